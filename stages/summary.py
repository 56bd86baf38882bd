"""Stage `summary`: every iteration's headline metrics in one table, the CSVs `dvc plots show` draws, the few
numbers `dvc exp show` leads with (reports/headline.json), and the best iteration chosen on the validation
split (reports/best.json; all null when there is none)."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.io import write_json
from selftaught.report import headline, print_table, write_report
from selftaught.core.runner import run_stage


def main(params, args):
    ks = [0, *params.iterations]
    wide = write_report([args.metrics / f"iter_{k}.json" for k in ks], args.out,
                        validation_files=[args.metrics / f"val_{k}.json" for k in ks])
    write_json(args.headline, headline(wide))
    print_table(wide)


if __name__ == "__main__":
    run_stage(main, "metrics", "out", "headline", outputs=("out", "headline"), dirs=("out",))
