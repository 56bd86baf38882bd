"""Stage `seed`: write the seed model as a safetensors checkpoint."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.runner import run_stage
from selftaught.seed import build_seed


def main(params, args):
    build_seed(params.seed, args.out)


if __name__ == "__main__":
    run_stage(main, "out", outputs=("out",), dirs=("out",))
