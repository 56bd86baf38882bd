"""Training curves as they happen, through DVCLive: a transformers callback that logs, at every optimizer
step of the main process, the loss, learning rate and gradient norm (and with train.objective dpo the
rewards of the chosen and rejected judgments, their margin and accuracy) to the train stage's DVCLive folder
(`--live`, dvclive/train_<k> in dvc.yaml). DVCLive writes `metrics.json` (the latest values) and one
`plots/metrics/<key>.tsv` per key after every step, so `dvc exp show`, `dvc metrics show` and `dvc plots
show` see a run in progress.

Only the keys below are logged, never the runtime and throughput fields transformers adds at the end, and
without DVCLive's timestamps: every value comes from the (deterministic) training run, so the files, which
dvc.yaml declares as `cache: false` metrics and plots, are as byte-identical as the checkpoint."""

from __future__ import annotations

from pathlib import Path

KEYS = ("loss", "learning_rate", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins",
        "rewards/accuracies")


def picked(logs: dict) -> dict:
    """The logged values DVCLive gets out of one of the trainer's log records (empty: nothing to log)."""
    return {k: float(logs[k]) for k in KEYS if k in logs and logs[k] is not None}


def callback(directory, summary=None):
    """A TrainerCallback that logs to DVCLive in `directory` from the main process (the others log nothing);
    DVCLive first clears what an earlier run left there. `summary`: entries metrics.json holds beside the
    latest values (the synthetic backend's mark, core/metrics.py)."""
    from transformers import TrainerCallback

    class DVCLiveLogger(TrainerCallback):
        def __init__(self):
            self.live = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from dvclive import Live

                self.live = Live(str(Path(directory)), save_dvc_exp=False, dvcyaml=None, report=None)
                self.live.summary.update(summary or {})

        def on_log(self, args, state, control, logs=None, **kwargs):
            values = picked(logs or {})
            if self.live is None or not values:
                return
            self.live.step = state.global_step
            for k, v in values.items():
                self.live.log_metric(k, v, timestamp=False)
            self.live.next_step()

        def on_train_end(self, args, state, control, **kwargs):
            if self.live is not None:
                self.live.end()

    return DVCLiveLogger()
