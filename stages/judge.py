"""Stage `judge@k`: the judge of iteration k-1 samples judgments of iteration k's pairs, both orders.

With judge.adaptive, judgments are drawn in rounds of judge.round_samples per (pair, order) and an item
stops at its first correct judgment (at most judge.samples); otherwise judge.samples are drawn for every
item. The metrics record samples drawn, rounds and tokens generated. Finished chunks (generation.chunk_size
requests) are kept beside the output until it is written, so a rerun after a kill resumes."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.backends import Sampling, make_backend
from selftaught.core.io import read_jsonl, write_json, write_jsonl
from selftaught.judging import judge_adaptive, judge_pairs
from selftaught.prompts import judge_prompt
from selftaught.resume import stage_store
from selftaught.core.runner import console, run_stage
from selftaught.core.schemas import SyntheticPair


def main(params, args):
    p, g, k = params.judge, params.generation, args.iteration
    pairs = read_jsonl(args.pairs, SyntheticPair)
    prompt = judge_prompt(params)               # template and verdict format, checked before the model loads
    backend = make_backend(args.model, g, params.trust_remote_code, max_new_tokens=p.max_new_tokens)
    prompt.fit_to(backend, g.max_prompt_tokens)  # judged texts cut to fit generation.max_prompt_tokens
    store = stage_store(args.out, args.model, g, {"stage": "judge", "max_judged_chars": g.max_judged_chars},
                        log=console.print)
    sampling = Sampling(p.max_new_tokens, p.temperature, p.top_p)
    if p.adaptive:
        judgments, stats = judge_adaptive(backend, pairs, p.mode, p.samples, p.round_samples, sampling,
                                          p.seed, p.calibrate, g.max_judged_chars, desc=f"judge iter {k}",
                                          prompt=prompt, store=store, chunk_size=g.chunk_size)
    else:
        judgments = judge_pairs(backend, pairs, [p.mode], p.samples, sampling, p.seed, p.calibrate,
                                g.max_judged_chars, desc=f"judge iter {k}", prompt=prompt, store=store,
                                chunk_size=g.chunk_size)[p.mode]
        items = len({(j.pair_id, j.order) for j in judgments})
        stats = {"items": items, "max_samples": p.samples, "round_samples": p.samples, "rounds": 1,
                 "samples_drawn": len(judgments), "samples_fixed_n": items * p.samples,
                 "items_with_correct": len({(j.pair_id, j.order) for j in judgments if j.correct})}
    usage = backend.usage.snapshot()
    stats = {"adaptive": p.adaptive, "mode": p.mode, "verdict_format": prompt.verdict.name, **stats,
             "prompts_cut_to_fit": prompt.cut,
             "correct_judgments": sum(bool(j.correct) for j in judgments),
             "generated_tokens": usage["generated_tokens"], "prefill_tokens": usage["prefill_tokens"],
             "generated_tokens_per_item_with_correct":
                 round(usage["generated_tokens"] / stats["items_with_correct"], 2) if stats["items_with_correct"] else None}
    write_jsonl(args.out, judgments)
    write_json(args.metrics, stats)
    store.finish()
    console.print({key: v for key, v in stats.items() if key != "per_round"})


if __name__ == "__main__":
    run_stage(main, "pairs", "model", "out", "metrics", iteration=True, outputs=("out", "metrics"),
              models=("model",))
