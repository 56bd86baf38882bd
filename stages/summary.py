"""Stage `summary`: every iteration's headline metrics in one table, the CSVs `dvc plots show` draws, and the
few numbers `dvc exp show` leads with (reports/headline.json)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.io import write_json
from selftaught.report import headline, print_table, write_report
from selftaught.runner import run_stage


def main(params, args):
    files = [args.metrics / f"iter_{k}.json" for k in [0, *params.iterations]]
    wide = write_report(files, args.out)
    write_json(args.headline, headline(wide))
    print_table(wide)


if __name__ == "__main__":
    run_stage(main, "metrics", "out", "headline")
