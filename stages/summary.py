"""Stage `summary`: every iteration's metrics in one table (reports/), drawn by `dvc plots show`."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.report import print_table, write_report
from selftaught.runner import run_stage


def main(params):
    files = [paths.eval_metrics(k) for k in [0, *sorted(params["iterations"])]]
    print_table(write_report(files, primary=params["evaluate"]["modes"][0]))


if __name__ == "__main__":
    run_stage(main)
