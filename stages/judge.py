"""Stage `judge@k`: the judge of iteration k-1 (for k = 1 the seed, or the generator with judge.first_judge)
samples judgments of iteration k's pairs, both orders.

With judge.adaptive, judgments are drawn in rounds of judge.round_samples per (pair, order) and an item
stops at its first correct judgment (at most judge.samples); otherwise judge.samples are drawn for every
item. The metrics record samples drawn, rounds and tokens generated. Finished chunks (generation.chunk_size
requests) are kept beside the output until it is written, so a rerun after a kill resumes."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.backends import make_backend
from selftaught.core.io import read_jsonl, write_json, write_jsonl
from selftaught.core.metrics import synthetic_mark
from selftaught.core.runner import console, run_stage
from selftaught.core.schemas import SyntheticPair
from selftaught.judging import JudgeSettings, judge
from selftaught.prompts import judge_prompt
from selftaught.resume import stage_store
from selftaught.seed import judge_model


def main(params, args):
    g, k = params.generation, args.iteration
    pairs = read_jsonl(args.pairs, SyntheticPair)
    prompt = judge_prompt(params)               # template and verdict format, checked before the model loads
    model = judge_model(k, params.judge.first_judge, args.model, args.generator)
    backend = make_backend(model, g, params.trust_remote_code, max_new_tokens=params.judge.max_new_tokens)
    prompt.fit_to(backend, g.max_prompt_tokens)  # judged texts cut to fit generation.max_prompt_tokens
    store = stage_store(args.out, model, g, {"stage": "judge", "max_judged_chars": g.max_judged_chars},
                        log=console.print)
    judgments, stats = judge(backend, pairs, JudgeSettings.for_judge(params), prompt, store,
                             f"judge iter {k}")
    write_jsonl(args.out, judgments)
    write_json(args.metrics, {**stats, **synthetic_mark(params)})
    store.finish()
    console.print({key: v for key, v in stats.items() if key != "per_round"})


if __name__ == "__main__":
    run_stage(main, "pairs", "model", "generator", "out", "metrics", iteration=True,
              outputs=("out", "metrics"), models=("model",))
