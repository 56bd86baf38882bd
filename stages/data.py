"""Stage `data`: validated, deduplicated, decontaminated instruction shards (one file per iteration,
`iter_<k>.jsonl`), the benchmark pairs split into test and validation (an empty file when
data.validation_per_benchmark is 0), and the checked RewardBench section map (`{}` when none is set)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.data import prepare
from selftaught.io import atomic_path, write_json, write_jsonl
from selftaught.runner import console, run_stage


def main(params, args):
    shards, evals, validation, sections, metrics = prepare(params)
    with atomic_path(args.shards) as tmp:
        tmp.mkdir()
        for k, items in shards.items():
            write_jsonl(tmp / f"iter_{k}.jsonl", items)
    write_jsonl(args.benchmarks, evals)
    write_jsonl(args.validation, validation)
    write_json(args.sections, sections)
    write_json(args.metrics, metrics)
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, "shards", "benchmarks", "validation", "sections", "metrics")
