"""Stage `judge@k`: the judge of iteration k-1 samples judgments of iteration k's pairs, both orders."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught import paths
from selftaught.backends import Sampling, make_backend
from selftaught.io import read_jsonl, write_jsonl
from selftaught.judging import judge_pairs
from selftaught.runner import run_stage
from selftaught.schemas import SyntheticPair


def main(params, k):
    p, g = params["judge"], params["generation"]
    pairs = read_jsonl(paths.pairs(k), SyntheticPair)
    backend = make_backend(paths.model_dir(params["iterations"][k]["prev"]), g, params["seed"]["trust_remote_code"])
    out = judge_pairs(backend, pairs, [p["mode"]], p["samples"], Sampling(p["max_new_tokens"], p["temperature"], p["top_p"]),
                      p["seed"], p["calibrate"], g["max_judged_chars"], desc=f"judge iter {k}")
    write_jsonl(paths.judgments(k), out[p["mode"]])


if __name__ == "__main__":
    run_stage(main, iteration=True)
