"""Stage `summary`: every iteration's headline metrics in one table, the CSVs `dvc plots show` draws, and the
best iteration chosen on the validation split (reports/best.json; all null when there is none)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.report import print_table, write_report
from selftaught.runner import run_stage


def main(params, args):
    ks = [0, *params.iterations]
    wide = write_report([args.metrics / f"iter_{k}.json" for k in ks], args.out,
                        validation_files=[args.metrics / f"val_{k}.json" for k in ks])
    print_table(wide)


if __name__ == "__main__":
    run_stage(main, "metrics", "out")
