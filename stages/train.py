"""Stage `train@k`: SFT (TRL) of iteration k's judge on the kept judgments, from the seed or the previous
judge (train.init). With train.accelerate_config set, the stage re-runs itself under `accelerate launch`."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import os
import sys

from selftaught.io import atomic_path, read_jsonl, write_json
from selftaught.runner import console, run_stage
from selftaught.training import train


def main(params, args):
    p = params.train
    if p.accelerate_config and "ACCELERATE_MIXED_PRECISION" not in os.environ and "LOCAL_RANK" not in os.environ:
        os.execvp("accelerate", ["accelerate", "launch", "--config_file", p.accelerate_config, *sys.argv])
    init = args.seed_model if p.init == "seed" else args.prev_model
    records = read_jsonl(args.data)
    with atomic_path(args.out) as tmp:
        stats = train(records, init, tmp, p, params.generation.threads)
    curve = stats.pop("loss_curve")
    write_json(args.metrics, stats)
    with atomic_path(args.loss) as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(curve)))
    console.print(stats)


if __name__ == "__main__":
    run_stage(main, "data", "seed-model", "prev-model", "out", "metrics", "loss", iteration=True)
