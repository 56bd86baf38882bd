"""Stage `train@k`: iteration k's judge, trained from the seed or the previous judge (train.init) on the kept
judgments (train.objective sft) or on correct-vs-wrong judgment pairs (dpo). With train.accelerate_config set,
the stage re-runs itself under `accelerate launch`; every process trains, the main process alone writes the
checkpoint, the metrics and the loss curve. With train.select validation, the checkpoints saved during
training and the last one are evaluated on the validation split and the best becomes the judge
(selection.py)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import os
import sys

from selftaught.core.io import atomic_path, read_jsonl, write_json
from selftaught.core.runner import console, run_stage
from selftaught.core.schemas import Pair
from selftaught.prompts import judge_prompt
from selftaught.selection import select
from selftaught.training import check_launch, is_main_process, process_rank, train


def main(params, args):
    p = params.train
    check_launch(p)
    if (p.accelerate_config and "ACCELERATE_MIXED_PRECISION" not in os.environ
            and "LOCAL_RANK" not in os.environ):
        os.execvp("accelerate", ["accelerate", "launch", "--config_file", p.accelerate_config, *sys.argv])
    init = args.seed_model if p.init == "seed" else args.prev_model
    records = read_jsonl(args.preferences if p.objective == "dpo" else args.data)
    if not is_main_process():      # trains and joins the collectives; writes nothing
        train(records, init, None, p, params.generation.threads, params.trust_remote_code)
        return
    pairs = None
    if p.select == "validation":
        judge_prompt(params)                   # a bad judge template fails before training, not after
        pairs = read_jsonl(args.validation, Pair) if args.validation.stat().st_size else []
    with atomic_path(args.out, directory=True) as tmp:
        saved = tmp.parent / "candidates"      # inside the stage's temp folder: removed with it
        stats = train(records, init, tmp, p, params.generation.threads, params.trust_remote_code, saved)
        if pairs is not None:
            stats.update(select(saved, tmp, stats["steps"], pairs, params))
    curve = stats.pop("loss_curve")
    write_json(args.metrics, stats)
    with atomic_path(args.loss) as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(curve)))
    console.print(stats)
    if "processes" in stats:
        console.print(f"rank {process_rank()} wrote {args.out}, {args.metrics}, {args.loss}", highlight=False)


if __name__ == "__main__":
    run_stage(main, "data", "preferences", "validation", "seed-model", "prev-model", "out", "metrics", "loss",
              iteration=True, outputs=("out", "metrics", "loss"), dirs=("out",),
              models=("seed-model", "prev-model"))
