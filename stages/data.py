"""Stage `data`: validated, deduplicated, decontaminated instruction shards (one file per iteration,
`iter_<k>.jsonl`), the benchmark pairs split into test and validation (an empty file when
data.validation_per_benchmark is 0), and the checked RewardBench section map (`{}` when none is set); with
data.categories, only the instructions of data.keep_categories (labels from stage categorize)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.data import prepare
from selftaught.io import atomic_path, read_jsonl, write_json, write_jsonl
from selftaught.runner import console, run_stage


def main(params, args):
    labels = {r["id"]: r["category"] for r in read_jsonl(args.categories)} if params.data.categories else None
    shards, evals, validation, sections, metrics = prepare(params, labels)
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
    run_stage(main, "categories", "shards", "benchmarks", "validation", "sections", "metrics")
