"""Stage `data`: validated, deduplicated, decontaminated instruction shards (one file per iteration,
`iter_<k>.jsonl`) and benchmark pairs."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.data import prepare
from selftaught.io import atomic_path, write_json, write_jsonl
from selftaught.runner import console, run_stage


def main(params, args):
    shards, evals, metrics = prepare(params)
    with atomic_path(args.shards) as tmp:
        tmp.mkdir()
        for k, items in shards.items():
            write_jsonl(tmp / f"iter_{k}.jsonl", items)
    write_jsonl(args.benchmarks, evals)
    write_json(args.metrics, metrics)
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, "shards", "benchmarks", "metrics")
