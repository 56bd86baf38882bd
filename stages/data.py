"""Stage `data`: validated, deduplicated, decontaminated instruction shards and benchmark pairs."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.data import prepare
from selftaught.io import atomic_path, write_json, write_jsonl
from selftaught.runner import console, run_stage


def main(params):
    shards, evals, metrics = prepare(params)
    with atomic_path(paths.SHARDS) as tmp:
        tmp.mkdir()
        for k, items in shards.items():
            write_jsonl(tmp / paths.shard(k).name, items)
    write_jsonl(paths.BENCHMARKS, evals)
    write_json(paths.DATA_STATS, metrics)
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main)
