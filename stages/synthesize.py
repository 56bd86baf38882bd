"""Stage `synthesize@k`: contrasting pairs from iteration k's shard, written by the generator model."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.backends import make_backend
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.runner import console, run_stage
from selftaught.schemas import Instruction
from selftaught.synthesize import synthesize


def main(params, k):
    gen_dir = paths.model_dir(params["iterations"][k]["gen"])
    instructions = read_jsonl(paths.shard(k), Instruction)
    backend = make_backend(gen_dir, params["generation"], params["seed"]["trust_remote_code"])
    pairs, metrics = synthesize(backend, str(gen_dir), instructions, params["synthesize"])
    write_jsonl(paths.pairs(k), pairs)
    write_json(paths.synth_metrics(k), metrics)
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, iteration=True)
