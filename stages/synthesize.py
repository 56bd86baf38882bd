"""Stage `synthesize@k`: contrasting pairs from iteration k's shard, written by the generator model: the model
iterations.<k>.gen names (--model), or the `generator` model (--generator) with synthesize.generator:
separate. Finished chunks are kept beside the output until it is written, so a rerun after a kill resumes."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core import progress
from selftaught.backends import make_backend
from selftaught.core.io import read_jsonl, write_json, write_jsonl
from selftaught.core.metrics import synthetic_mark
from selftaught.prompts import check_synthesis_templates
from selftaught.resume import stage_store
from selftaught.core.runner import console, run_stage
from selftaught.core.schemas import Instruction
from selftaught.seed import resolve_model
from selftaught.synthesize import synthesize


def main(params, args):
    check_synthesis_templates(params)
    p, g = params.synthesize, params.generation
    instructions = read_jsonl(args.shard, Instruction)
    name = args.generator if p.generator == "separate" else args.model
    model = resolve_model(name)
    backend = make_backend(model, g, params.trust_remote_code)
    store = stage_store(args.out, model, g, {"stage": "synthesize"}, log=console.print)
    # x, x' and its answer (rewrite: one call), answer to x' (at most)
    calls = 2 if p.pairs == "rewrite" else 3
    with progress.task(f"synthesize iter {args.iteration}", calls * len(instructions)):
        pairs, metrics = synthesize(backend, str(name), instructions, p, store, g.chunk_size,
                                    g.max_prompt_tokens)
    write_jsonl(args.out, pairs)
    write_json(args.metrics, {**metrics, **synthetic_mark(params)})
    store.finish()
    console.print(metrics)


if __name__ == "__main__":
    run_stage(main, "shard", "model", "generator", "out", "metrics", iteration=True,
              outputs=("out", "metrics"), models=("model",))
