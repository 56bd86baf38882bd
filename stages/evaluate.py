"""Stage `evaluate@k`: pairwise accuracy of models/iter_k on the benchmark pairs, both orders."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.backends import Sampling, make_judging_backends
from selftaught.evaluation import evaluate_all
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.judging import judge_pairs
from selftaught.report import print_eval
from selftaught.runner import run_stage
from selftaught.schemas import Pair


def main(params, k):
    p, g = params["evaluate"], params["generation"]
    pairs = read_jsonl(paths.BENCHMARKS, Pair)
    backend, lik = make_judging_backends(paths.model_dir(k), g, p["modes"], p["likelihood_dtype"],
                                         params["seed"]["trust_remote_code"])
    out = judge_pairs(backend, pairs, p["modes"], 1, Sampling(p["max_new_tokens"], p["temperature"], p["top_p"]),
                      p["seed"], p["calibrate"], g["max_judged_chars"], desc=f"evaluate iter {k}", likelihood_backend=lik)
    modes = {m: evaluate_all(js, pairs) for m, js in out.items()}
    primary = p["modes"][0]
    metrics = {"iteration": k, "mode": primary, **{key: modes[primary][key] for key in
               ("accuracy", "accuracy_stderr", "parse_rate", "position_consistency", "a_share")},
               "best_mode_accuracy": max(m["accuracy"] for m in modes.values()), "modes": modes}
    write_jsonl(paths.eval_verdicts(k), [j for m in p["modes"] for j in out[m]])
    write_json(paths.eval_metrics(k), metrics)
    print_eval(metrics)


if __name__ == "__main__":
    run_stage(main, iteration=True)
