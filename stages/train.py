"""Stage `train@k`: SFT (TRL) of iteration k's judge on the kept judgments. With train.accelerate_config
set, the stage re-runs itself under `accelerate launch` (multi-GPU DDP/FSDP/DeepSpeed)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import os
import sys

from selftaught import paths
from selftaught.io import atomic_path, read_jsonl, write_json
from selftaught.runner import console, run_stage
from selftaught.training import train


def main(params, k):
    p = params["train"]
    cfg = p.get("accelerate_config") or ""
    if cfg and "ACCELERATE_MIXED_PRECISION" not in os.environ and "LOCAL_RANK" not in os.environ:
        os.execvp("accelerate", ["accelerate", "launch", "--config_file", cfg, *sys.argv])
    init = paths.model_dir(0 if p["init"] == "seed" else params["iterations"][k]["prev"])
    records = read_jsonl(paths.train_set(k))
    with atomic_path(paths.model_dir(k)) as tmp:
        stats = train(records, init, tmp, p, params["generation"]["threads"])
    curve = stats.pop("loss_curve")
    write_json(paths.train_metrics(k), stats)
    with atomic_path(paths.REPORTS / f"train_loss_{k}.csv") as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(curve)))
    console.print(stats)


if __name__ == "__main__":
    run_stage(main, iteration=True)
