"""Stage `seed`: write the seed model as a safetensors checkpoint, models/iter_0."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.runner import run_stage
from selftaught.seed import build_seed


def main(params):
    build_seed(params, paths.model_dir(0))


if __name__ == "__main__":
    run_stage(main)
