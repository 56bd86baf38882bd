"""Stage `evaluate@k`: pairwise accuracy of a judge on the benchmark pairs, both orders, in every verdict
mode of evaluate.modes, and (evaluate.samples > 1) the majority vote of that many sampled judgments per pair
and order in each generative mode (`free_vote`, `constrained_vote`). The same for the validation pairs, into
their own files. The metrics files hold the headline per mode; the report files every subset, the vote's
counts and the RewardBench sections."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.backends import make_judging_backends
from selftaught.benchmarking import EvalSettings, evaluate_split
from selftaught.core.io import read_json, read_jsonl, write_json, write_jsonl
from selftaught.core.metrics import synthetic_mark
from selftaught.core.runner import run_stage
from selftaught.core.schemas import Pair
from selftaught.evaluation import headline
from selftaught.prompts import judge_prompt
from selftaught.report import print_eval


def read_pairs(path):
    """The pairs of a split; an empty file (no validation split) is no pairs."""
    return [] if path.is_file() and path.stat().st_size == 0 else read_jsonl(path, Pair)


def main(params, args):
    p, g, k = params.evaluate, params.generation, args.iteration
    pairs, validation = read_jsonl(args.benchmarks, Pair), read_pairs(args.validation)
    sections = read_json(args.sections, "the section map")
    prompt = judge_prompt(params)               # judge.template and judge.verdict_format, as in training
    backend, lik = make_judging_backends(args.model, g, p.modes, p.likelihood_dtype, params.trust_remote_code)
    prompt.fit_to(backend, g.max_prompt_tokens)
    settings = EvalSettings.from_params(params)
    records, modes, _ = evaluate_split(backend, lik, prompt, pairs, settings, sections, f"evaluate iter {k}")
    val = evaluate_split(backend, lik, prompt, validation, settings, sections, f"validate iter {k}") \
        if validation else None
    write_jsonl(args.out, records)
    mark = synthetic_mark(params)
    write_json(args.metrics, {"iteration": k, **headline(modes), **mark})
    write_json(args.report, {"iteration": k, "verdict_format": prompt.verdict.name,
                             "prompts_cut_to_fit": prompt.cut, "modes": modes, **mark})
    write_jsonl(args.val_out, val[0] if val else [])
    write_json(args.val_metrics, {"iteration": k, **(headline(val[1]) if val else {}), **mark})
    write_json(args.val_report, {"iteration": k, "modes": val[1] if val else {}, **mark})
    print_eval(k, modes)
    if val:
        print_eval(f"{k} (validation)", val[1])


if __name__ == "__main__":
    run_stage(main, "benchmarks", "validation", "sections", "model", "out", "metrics", "report", "val-out",
              "val-metrics", "val-report", iteration=True,
              outputs=("out", "metrics", "report", "val-out", "val-metrics", "val-report"), models=("model",))
