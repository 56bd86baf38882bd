"""Stage `generator`: the model that writes pairs (synthesize.generator: separate) and labels categories.
With generator.source seed it is the seed itself: the stage writes only a record naming models/iter_0 and
its files' hashes (no weights copied); otherwise it builds a checkpoint as the seed stage does."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.runner import run_stage
from selftaught.seed import build_generator


def main(params, args):
    build_generator(params.generator, args.out)


if __name__ == "__main__":
    run_stage(main, "out")
