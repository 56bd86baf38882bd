"""Stage `check_params`: the whole params file, validated before any other stage runs (seed and generator
depend on its output, and every other stage on theirs). DVC gives this stage every key of params.yaml, so an
unknown section or key, which no other stage declares, stops `dvc repro` here naming it instead of passing
unnoticed. Its output lists the sections checked: the same bytes whatever the values, so a changed value
reruns this stage (a second) and nothing below it that does not declare the key."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.config import Params
from selftaught.core.io import write_json
from selftaught.core.runner import run_stage


def main(params, args):
    write_json(args.out, {"checked": sorted(Params.model_fields)})


if __name__ == "__main__":
    run_stage(main, "out", outputs=("out",))
