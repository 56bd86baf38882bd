"""Stage `summary`: every iteration's headline metrics in one table, and the CSVs `dvc plots show` draws."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.report import print_table, write_report
from selftaught.runner import run_stage


def main(params, args):
    files = [args.metrics / f"iter_{k}.json" for k in [0, *params.iterations]]
    print_table(write_report(files, args.out))


if __name__ == "__main__":
    run_stage(main, "metrics", "out")
