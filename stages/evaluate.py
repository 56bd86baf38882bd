"""Stage `evaluate@k`: pairwise accuracy of a judge on the benchmark pairs, both orders, in every verdict
mode of evaluate.modes. The metrics file holds the headline per mode; the report file every subset."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.backends import Sampling, make_judging_backends
from selftaught.evaluation import evaluate_all, headline
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.judging import judge_pairs
from selftaught.report import print_eval
from selftaught.runner import run_stage
from selftaught.schemas import Pair


def main(params, args):
    p, g, k = params.evaluate, params.generation, args.iteration
    pairs = read_jsonl(args.benchmarks, Pair)
    backend, lik = make_judging_backends(args.model, g, p.modes, p.likelihood_dtype, params.seed.trust_remote_code)
    out = judge_pairs(backend, pairs, p.modes, 1, Sampling(p.max_new_tokens, p.temperature, p.top_p),
                      p.seed, p.calibrate, g.max_judged_chars, desc=f"evaluate iter {k}", likelihood_backend=lik)
    modes = {m: evaluate_all(js, pairs) for m, js in out.items()}
    write_jsonl(args.out, [j for m in p.modes for j in out[m]])
    write_json(args.metrics, {"iteration": k, **headline(modes)})
    write_json(args.report, {"iteration": k, "modes": modes})
    print_eval(k, modes)


if __name__ == "__main__":
    run_stage(main, "benchmarks", "model", "out", "metrics", "report", iteration=True)
