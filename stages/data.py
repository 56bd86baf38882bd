"""Stage `data`: validated, deduplicated, decontaminated instruction shards (one file per iteration,
`iter_<k>.jsonl`), the benchmark pairs split into test and validation (an empty file when
data.validation_per_benchmark is 0), and the checked RewardBench section map (`{}` when none is set); with
data.categories, only the instructions of data.keep_categories (labels from stage categorize). With
data.skip_invalid, invalid lines of the pools and benchmarks are left out, counted in the metrics
(`skipped_invalid`) and listed in the log; by default the first one stops it."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.data import prepare
from selftaught.core.io import atomic_path, read_jsonl, report_skipped, write_json, write_jsonl
from selftaught.core.metrics import synthetic_mark
from selftaught.core.runner import console, run_stage
from selftaught.core.safety import check_paths


def main(params, args):
    d = params.data
    check_paths({**{f"data.instructions[{i}]": f for i, f in enumerate(d.instructions)},
                 **{f"data.benchmarks[{i}]": f for i, f in enumerate(d.benchmarks)}},
                {"--shards": args.shards, "--benchmarks": args.benchmarks, "--metrics": args.metrics},
                dirs={"--shards"})
    labels = {r["id"]: r["category"] for r in read_jsonl(args.categories)} if d.categories else None
    shards, evals, validation, sections, metrics, skipped = prepare(params, labels)
    for line in report_skipped(skipped, "data.skip_invalid"):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    with atomic_path(args.shards, directory=True) as tmp:
        tmp.mkdir()
        for k, items in shards.items():
            write_jsonl(tmp / f"iter_{k}.jsonl", items)
    write_jsonl(args.benchmarks, evals)
    write_jsonl(args.validation, validation)
    write_json(args.sections, sections)
    write_json(args.metrics, {**metrics, **synthetic_mark(params)})
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, "categories", "shards", "benchmarks", "validation", "sections", "metrics",
              outputs=("shards", "benchmarks", "validation", "sections", "metrics"), dirs=("shards",))
