"""Stage `train@k`: iteration k's judge, trained from the seed or the previous judge (train.init) on the kept
judgments (train.objective sft) or on correct-vs-wrong judgment pairs (dpo). With train.accelerate_config set,
the stage re-runs itself under `accelerate launch`; every process trains, the main process alone writes the
checkpoint (with its model card and judge config), the metrics and the loss curve, and logs every step
through DVCLive (--live). With train.select validation, the checkpoints saved during training and the last
one are evaluated on the validation split and the best becomes the judge (selection.py)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import os
import sys

from selftaught import judge_config, model_card
from selftaught.core.errors import InputError
from selftaught.core.io import atomic_path, read_jsonl, write_json
from selftaught.core.metrics import synthetic_mark
from selftaught.core.runner import console, run_stage
from selftaught.core.schemas import Pair
from selftaught.live import callback
from selftaught.prompts import judge_prompt
from selftaught.selection import select
from selftaught.training import NO_RECORDS, candidates_dir, check_launch, is_main_process, process_rank, train


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
    records = path                 # read one record at a time while training encodes them
    if not is_main_process():      # trains and joins the collectives; writes nothing
        train(records, init, None, p, params.generation.threads, params.trust_remote_code)
        return
    pairs = None
    if p.select == "validation":
        judge_prompt(params)                   # a bad judge template fails before training, not after
        pairs = read_jsonl(args.validation, Pair) if args.validation.stat().st_size else []
    with atomic_path(args.out, directory=True) as tmp:
        stats = train(records, init, tmp, p, params.generation.threads, params.trust_remote_code,
                      [callback(args.live, synthetic_mark(params))])
        if pairs is not None:
            stats.update(select(candidates_dir(tmp), tmp, stats["steps"], pairs, params))
        curve = stats.pop("loss_curve")
        stats.update(synthetic_mark(params))
        cfg = judge_config.write(params, tmp, args.iteration)
        model_card.write(tmp, model_card.Card(
            args.iteration, f"train@{args.iteration}", parent=init.as_posix(),
            inputs=(args.data, args.preferences, args.seed_model, args.prev_model),
            params={"train": p.model_dump(), "seed": params.seed.model_dump()}, metrics=stats, judge=cfg))
    write_json(args.metrics, stats)
    with atomic_path(args.loss) as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(curve)))
    console.print(stats)
    if "processes" in stats:
        console.print(f"rank {process_rank()} wrote {args.out}, {args.metrics}, {args.loss}", highlight=False)


if __name__ == "__main__":
    run_stage(main, "data", "preferences", "validation", "seed-model", "prev-model", "out", "metrics", "loss",
              "live", iteration=True, outputs=("out", "metrics", "loss", "live"), dirs=("out", "live"),
              models=("seed-model", "prev-model"))
