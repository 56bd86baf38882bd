"""Stage `seed`: write the seed model as a safetensors checkpoint, with its model card."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import model_card
from selftaught.core.runner import run_stage
from selftaught.seed import build_seed


def main(params, args):
    card = model_card.Card(0, "seed", inputs=(params.seed.path,), params={"seed": params.seed.model_dump()})
    build_seed(params.seed, args.out, finish=lambda tmp: model_card.write(tmp, card))


if __name__ == "__main__":
    run_stage(main, "out", outputs=("out",), dirs=("out",))
