"""Stage `train@k`: iteration k's judge, trained from the seed or the previous judge (train.init) on the kept
judgments (train.objective sft) or on correct-vs-wrong judgment pairs (dpo). With train.accelerate_config set,
the stage re-runs itself under `accelerate launch`; every process trains, the main process alone writes the
checkpoint, the metrics and the loss curve."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import os
import sys

from selftaught.core.errors import InputError
from selftaught.core.io import atomic_path, read_jsonl, write_json
from selftaught.core.runner import console, run_stage
from selftaught.training import NO_RECORDS, check_launch, is_main_process, process_rank, train


def main(params, args):
    p = params.train
    check_launch(p)
    if (p.accelerate_config and "ACCELERATE_MIXED_PRECISION" not in os.environ
            and "LOCAL_RANK" not in os.environ):
        os.execvp("accelerate", ["accelerate", "launch", "--config_file", p.accelerate_config, *sys.argv])
    init = args.seed_model if p.init == "seed" else args.prev_model
    path = args.preferences if p.objective == "dpo" else args.data
    # the filter writes an empty file when it kept nothing: say why that objective has nothing to train on
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, NO_RECORDS[p.objective])
    records = read_jsonl(path)
    if not is_main_process():      # trains and joins the collectives; writes nothing
        train(records, init, None, p, params.generation.threads, params.trust_remote_code)
        return
    with atomic_path(args.out, directory=True) as tmp:
        stats = train(records, init, tmp, p, params.generation.threads, params.trust_remote_code)
    curve = stats.pop("loss_curve")
    write_json(args.metrics, stats)
    with atomic_path(args.loss) as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(curve)))
    console.print(stats)
    if "processes" in stats:
        console.print(f"rank {process_rank()} wrote {args.out}, {args.metrics}, {args.loss}", highlight=False)


if __name__ == "__main__":
    run_stage(main, "data", "preferences", "seed-model", "prev-model", "out", "metrics", "loss",
              iteration=True, outputs=("out", "metrics", "loss"), dirs=("out",),
              models=("seed-model", "prev-model"))
