"""Stage `evaluate@k`: pairwise accuracy of a judge on the benchmark pairs, both orders, in every verdict
mode of evaluate.modes, and (evaluate.samples > 1) the majority vote of that many sampled judgments per pair
and order in each generative mode (`free_vote`, `constrained_vote`). The same for the validation pairs, into
their own files. The metrics files hold the headline per mode; the report files every subset, the vote's
counts and the RewardBench sections."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

import json
from dataclasses import replace

from selftaught.backends import Sampling, make_judging_backends
from selftaught.core.metrics import GENERATIVE_MODES, VOTE_SUFFIX, vote_modes
from selftaught.core.errors import InputError
from selftaught.evaluation import evaluate_all, evaluate_vote, headline, rewardbench
from selftaught.core.io import read_jsonl, write_json, write_jsonl
from selftaught.judging import judge_pairs
from selftaught.prompts import judge_prompt
from selftaught.report import print_eval
from selftaught.core.runner import run_stage
from selftaught.core.schemas import Pair


def read_pairs(path):
    """The pairs of a split; an empty file (no validation split) is no pairs."""
    return [] if path.is_file() and path.stat().st_size == 0 else read_jsonl(path, Pair)


def read_sections(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read the section map ({e})") from None


def evaluate(params, backend, lik, prompt, pairs, sections, desc):
    """(judgment records, {mode: metrics}) of one split: the greedy verdicts of every mode, then the sampled
    judgments of each vote, each judged in its own call (a split's results do not depend on another's)."""
    p, g = params.evaluate, params.generation
    out = judge_pairs(backend, pairs, p.modes, 1, Sampling(p.max_new_tokens, p.temperature, p.top_p),
                      p.seed, p.calibrate, g.max_judged_chars, desc=desc, likelihood_backend=lik, prompt=prompt)
    records = [j for m in p.modes for j in out[m]]
    modes = {m: evaluate_all(js, pairs) for m, js in out.items()}
    if vote_modes(p.modes, p.samples):
        generative = [m for m in p.modes if m in GENERATIVE_MODES]
        sampled = judge_pairs(backend, pairs, generative, p.samples,
                              Sampling(p.max_new_tokens, p.vote_temperature, p.top_p), p.seed, p.calibrate,
                              g.max_judged_chars, desc=f"{desc} (vote)", prompt=prompt)
        for m in generative:
            js = [replace(j, mode=m + VOTE_SUFFIX) for j in sampled[m]]
            records += js
            modes[m + VOTE_SUFFIX], out[m + VOTE_SUFFIX] = evaluate_vote(js, pairs, m + VOTE_SUFFIX,
                                                                         p.vote_temperature)
    if sections:
        for m in modes:
            modes[m]["rewardbench"] = rewardbench(out[m], pairs, sections)
    return records, modes


def main(params, args):
    p, g, k = params.evaluate, params.generation, args.iteration
    pairs, validation = read_jsonl(args.benchmarks, Pair), read_pairs(args.validation)
    sections = read_sections(args.sections)
    prompt = judge_prompt(params)               # judge.template and judge.verdict_format, as in training
    backend, lik = make_judging_backends(args.model, g, p.modes, p.likelihood_dtype, params.trust_remote_code)
    prompt.fit_to(backend, g.max_prompt_tokens)
    records, modes = evaluate(params, backend, lik, prompt, pairs, sections, f"evaluate iter {k}")
    val = evaluate(params, backend, lik, prompt, validation, sections, f"validate iter {k}") if validation else None
    write_jsonl(args.out, records)
    write_json(args.metrics, {"iteration": k, **headline(modes)})
    write_json(args.report, {"iteration": k, "verdict_format": prompt.verdict.name, "prompts_cut_to_fit": prompt.cut,
                             "modes": modes})
    write_jsonl(args.val_out, val[0] if val else [])
    write_json(args.val_metrics, {"iteration": k, **headline(val[1])} if val else {"iteration": k})
    write_json(args.val_report, {"iteration": k, "modes": val[1]} if val else {"iteration": k, "modes": {}})
    print_eval(k, modes)
    if val:
        print_eval(f"{k} (validation)", val[1])


if __name__ == "__main__":
    run_stage(main, "benchmarks", "validation", "sections", "model", "out", "metrics", "report", "val-out",
              "val-metrics", "val-report", iteration=True,
              outputs=("out", "metrics", "report", "val-out", "val-metrics", "val-report"), models=("model",))
