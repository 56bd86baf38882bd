"""Stage `summary`: every iteration's headline metrics in one table, the CSVs `dvc plots show` draws, the few
numbers `dvc exp show` leads with (reports/headline.json), and the best iteration chosen on the validation
split (reports/best.json; all null when there is none).

It runs after every other stage, and first removes the temp folders that killed stages left (partial
checkpoints, resumable chunks: those named in --temps that no live process holds). It depends on --temps, so
DVC reruns it whenever a killed stage left one there, even if DVC then restored that stage from its cache."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.io import sweep_temps, write_json
from selftaught.core.metrics import marked
from selftaught.report import headline, print_table, write_report
from selftaught.core.runner import console, run_stage


def main(params, args):
    for folder in sweep_temps(args.temps):
        console.print(f"removed {folder}, left by a killed stage", highlight=False, soft_wrap=True,
                      markup=False)
    ks = [0, *params.iterations]
    files = [args.metrics / f"iter_{k}.json" for k in ks]
    wide = write_report(files, args.out, validation_files=[args.metrics / f"val_{k}.json" for k in ks])
    write_json(args.headline, {**headline(wide), **marked(files)})
    print_table(wide)


if __name__ == "__main__":
    run_stage(main, "metrics", "temps", "out", "headline", outputs=("out", "headline"), dirs=("out",))
