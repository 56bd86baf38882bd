"""Stage `synthesize@k`: contrasting pairs from iteration k's shard, written by the generator model."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.backends import make_backend
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.runner import console, run_stage
from selftaught.schemas import Instruction
from selftaught.synthesize import synthesize


def main(params, args):
    instructions = read_jsonl(args.shard, Instruction)
    backend = make_backend(args.model, params.generation, params.seed.trust_remote_code)
    pairs, metrics = synthesize(backend, str(args.model), instructions, params.synthesize)
    write_jsonl(args.out, pairs)
    write_json(args.metrics, metrics)
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, "shard", "model", "out", "metrics", iteration=True)
