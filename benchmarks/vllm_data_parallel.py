"""vLLM's own data parallelism on its CPU build: do 2 ranks give the bytes of 1 rank, and how fast?

The same judge requests (benchmark pairs from data/benchmarks/, both orders, the judge template through
selftaught.prompts.judge_messages, per-request seeds as the judge stage draws them) go through VLLMBackend:

- once in one engine (1 rank, no data-parallel settings),
- split over 2 data-parallel ranks: 2 processes, each its own engine with vLLM's data-parallel settings,
  rank r taking requests r::2, gathered back into the original order.

Each engine runs greedy and sampled generation (temperature 0.7, top-p 0.9, as the judge stage samples), per
dtype. vLLM 0.32 refuses `LLM(data_parallel_size=2)` in one process; offline data parallelism is one process
per rank, configured either

- `env`: through VLLM_DP_SIZE, VLLM_DP_RANK, VLLM_DP_RANK_LOCAL, VLLM_DP_MASTER_IP, VLLM_DP_MASTER_PORT (the
  way vLLM's example examples/features/data_parallel/data_parallel_offline.py launches ranks), or
- `args`: through the engine arguments data_parallel_size and data_parallel_rank (one rank per process,
  "external load balancing" in vLLM's terms), or
- `torchrun`: through data_parallel_size and distributed_executor_backend="external_launcher", each process
  given RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT as torchrun would (vLLM's example
  examples/features/torchrun/torchrun_dp_example_offline.py); the engine runs in the rank's process.

Prints a markdown table: identical greedy and sampled texts against 1 rank, whether all texts are the same
bytes, wall time (engine starts included), and the error of a run that failed (the exception's last line
from the rank's log). Run from the repository root with the python of a venv that has vLLM (vLLM's CPU
build: scripts/vllm_cpu_env.sh):

    PYTHONPATH=tests OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv-vllm-cpu/bin/python \
        benchmarks/vllm_data_parallel.py
        [--model models/iter_0] [--prompts 12] [--max-new-tokens 48] [--dtypes float32,bfloat16]
        [--mechanisms env,args,torchrun] [--tiny-moe DIR]

`--tiny-moe DIR` makes a tiny random Mixtral (2 layers, 4 experts, head size 32) in DIR and runs on it
instead: vLLM refuses the `env` and `args` ways for dense models. Each rank's log is kept under
--logs. Every rank is a subprocess of this script (`--worker`), and vLLM spawns its engine core from each,
so the work is under the `__main__` guard.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUDGE_SEED = 2                  # params.yaml judge.seed
MODES = {"greedy": (0.0, 1.0), "sampled": (0.7, 0.9)}


def judge_requests(n: int, benchmark: Path):
    """n judge requests: the first ceil(n/2) pairs of `benchmark` in both orders (the stage's seeds)."""
    from selftaught.backends import Request, request_seed
    from selftaught.core.io import read_jsonl
    from selftaught.core.schemas import Pair
    from selftaught.prompts.judge import judge_messages, ordered

    pairs = read_jsonl(benchmark, Pair)[:(n + 1) // 2]
    out = [Request.make(judge_messages(p.instruction, *ordered(p, order), max_chars=800),
                        request_seed(JUDGE_SEED, p.id, order, 0))
           for p in pairs for order in (0, 1)]
    return out[:n]


def worker(spec_path, out_path):
    """One engine (one rank): generate its share of the requests in every mode; write texts and timings."""
    spec = json.loads(Path(spec_path).read_text())
    out = {"rank": spec["rank"], "size": spec["size"]}
    try:
        from selftaught.backends import Sampling, make_backend
        from selftaught.backends import vllm_backend as vb
        from selftaught.core.config import Generation

        if spec.get("engine"):      # data-parallel engine arguments on top of the backend's own
            plain = vb.vllm_engine_kwargs

            def with_dp(*a, **k):
                engine, lora = plain(*a, **k)
                return {**engine, **spec["engine"]}, lora

            vb.vllm_engine_kwargs = with_dp
        reqs = judge_requests(spec["prompts"], Path(spec["benchmark"]))
        idx = list(range(spec["rank"], len(reqs), spec["size"]))
        out["indices"] = idx
        t0 = time.perf_counter()
        be = make_backend(spec["model"], Generation(backend="vllm", dtype=spec["dtype"],
                                                    gpu_memory_utilization=0.1, enforce_eager=True,
                                                    max_prompt_tokens=1024),
                          max_new_tokens=spec["max_new_tokens"])
        out["start_s"] = round(time.perf_counter() - t0, 1)
        out["seconds"] = {}
        for mode, (temp, top_p) in MODES.items():
            t = time.perf_counter()
            out[mode] = be.generate([reqs[i] for i in idx], Sampling(spec["max_new_tokens"], temp, top_p))
            out["seconds"][mode] = round(time.perf_counter() - t, 1)
    except BaseException as e:       # noqa: BLE001 -- reported to the driver, which prints it
        traceback.print_exc()
        where = traceback.extract_tb(e.__traceback__)[-1]
        out["error"] = f"{short_error(e)} ({Path(where.filename).name}:{where.lineno} in {where.name})"
    Path(out_path).write_text(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)                      # a data-parallel engine can hang on shutdown; the results are written


def short_error(e: BaseException) -> str:
    """The exception's type and its telling line (a pydantic error's "Value error, ..." line)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [""]
    line = next((ln for ln in lines if "Value error," in ln), lines[0])
    return f"{type(e).__name__}: {line.split(' [type=')[0]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_error(log: Path) -> str:
    """The root cause in a rank's log: the first exception line of a traceback vLLM logged (its engine core
    and workers log theirs there), with the frame that raised it."""
    lines = [re.sub(r"^\(.*?\) ERROR .*?\] ", "", ln).rstrip() for ln in log.read_text(errors="replace")
             .splitlines()]
    frame = ""
    for ln in lines:
        m = re.match(r'\s*File ".*/([^/"]+)", line (\d+), in (\S+)', ln)
        if m:
            frame = f"{m[1]}:{m[2]} in {m[3]}"
        elif re.match(r"^[A-Za-z_.]*(Error|Exception)\b(:|$)", ln):
            return f"{ln.strip()} ({frame})" if frame else ln.strip()
    return ""


def run_ranks(args, python, dtype, size, mechanism, logs: Path) -> dict:
    """Run `size` ranks at once (size 1: a plain engine); their outputs gathered, wall time, errors."""
    port = free_port()
    procs, outs = [], []
    tag = f"{dtype}-{mechanism}-{size}"
    t0 = time.perf_counter()
    for r in range(size):
        spec = {"model": args.model, "benchmark": args.benchmark, "prompts": args.prompts, "dtype": dtype,
                "max_new_tokens": args.max_new_tokens, "rank": r, "size": size}
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
        if size > 1 and mechanism == "env":
            env.update(VLLM_DP_SIZE=str(size), VLLM_DP_RANK=str(r), VLLM_DP_RANK_LOCAL=str(r),
                       VLLM_DP_MASTER_IP="127.0.0.1", VLLM_DP_MASTER_PORT=str(port))
        elif size > 1 and mechanism == "args":
            spec["engine"] = {"data_parallel_size": size, "data_parallel_rank": r,
                              "data_parallel_address": "127.0.0.1", "data_parallel_rpc_port": port}
        elif size > 1:
            spec["engine"] = {"data_parallel_size": size, "distributed_executor_backend": "external_launcher"}
            env.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(size), LOCAL_WORLD_SIZE=str(size),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        spec_path, out = logs / f"{tag}-rank{r}.spec.json", logs / f"{tag}-rank{r}.out.json"
        spec_path.write_text(json.dumps(spec))
        out.unlink(missing_ok=True)
        log = open(logs / f"{tag}-rank{r}.log", "w")
        procs.append(subprocess.Popen([python, __file__, "--worker", str(spec_path), str(out)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        outs.append(out)
    errors = []
    for r, p in enumerate(procs):
        try:
            p.wait(timeout=max(1.0, args.timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            errors.append(f"rank {r}: no result after {args.timeout} s (killed)")
    for p in procs:                 # each rank's process group: what is left of its engine core too
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    wall = time.perf_counter() - t0
    got = [json.loads(o.read_text()) if o.exists() else {} for o in outs]
    for r, g in enumerate(got):
        if "error" in g:
            cause = last_error(logs / f"{tag}-rank{r}.log")
            kind = re.split(r"[:( ]", cause)[0].rsplit(".", 1)[-1]      # the log's root cause, if another
            errors.append(f"rank {r}: {g['error']}" + (f"; root cause in its log: {cause}"
                                                       if cause and kind != g["error"].split(":")[0] else ""))
        elif not g and not any(e.startswith(f"rank {r}:") for e in errors):
            errors.append(f"rank {r}: no result (exit {procs[r].returncode}; "
                          f"log: {last_error(logs / f'{tag}-rank{r}.log')})")
    if len(errors) > 1 and len({e.split(": ", 1)[1] for e in errors}) == 1:
        errors = [f"every rank: {errors[0].split(': ', 1)[1]}"]
    res = {"wall": wall, "errors": errors, "start": max((g.get("start_s", 0) for g in got), default=0)}
    if not errors:
        n = args.prompts
        for mode in MODES:
            texts = [None] * n
            for g in got:
                for i, t in zip(g["indices"], g[mode]):
                    texts[i] = t
            res[mode] = texts
        res["seconds"] = {m: max(g["seconds"][m] for g in got) for m in MODES}
    return res


def make_tiny_moe(out_dir: Path) -> Path:
    """A tiny random Mixtral (mixture of experts) with the tests' tiny tokenizer, head size 32."""
    import torch
    from support.tiny_model import make_tiny_model  # tests/support: run with PYTHONPATH=tests
    from transformers import AutoConfig, MixtralConfig, MixtralForCausalLM

    make_tiny_model(out_dir, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                    num_key_value_heads=1)
    base = AutoConfig.from_pretrained(out_dir)
    cfg = MixtralConfig(vocab_size=base.vocab_size, hidden_size=64, intermediate_size=128,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                        num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=4096,
                        bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
                        pad_token_id=base.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    MixtralForCausalLM(cfg).save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--benchmark", default="data/benchmarks/llmbar.jsonl")
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--mechanisms", default="env,args,torchrun",
                    help="how ranks get their data-parallel settings: env, args, torchrun")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900, help="seconds for one run of all its ranks")
    ap.add_argument("--tiny-moe", default="", help="make a tiny Mixtral in this folder and run on it")
    ap.add_argument("--logs", default="", help="folder for the ranks' specs, outputs and logs")
    args = ap.parse_args()
    logs = Path(args.logs or tempfile.mkdtemp(prefix="vllm_dp_"))
    logs.mkdir(parents=True, exist_ok=True)
    if args.tiny_moe:
        args.model = str(make_tiny_moe(Path(args.tiny_moe)))
    args.model = str(Path(args.model).resolve())
    args.benchmark = str(Path(args.benchmark).resolve())
    python = sys.executable
    rows = []
    t0 = time.perf_counter()
    for dtype in args.dtypes.split(","):
        one = run_ranks(args, python, dtype, 1, "-", logs)
        rows.append((dtype, "1 rank", one, one))
        for mech in args.mechanisms.split(","):
            many = run_ranks(args, python, dtype, args.ranks, mech, logs)
            rows.append((dtype, f"{args.ranks} ranks ({mech})", many, one))
    print(f"model {args.model}; {args.prompts} judge prompts ({Path(args.benchmark).name}, both orders), "
          f"{args.max_new_tokens} new tokens, greedy and sampled (0.7, top-p 0.9, per-request seeds); eager, "
          f"gpu_memory_utilization 0.1; total {time.perf_counter() - t0:.0f} s; logs in {logs}\n")
    print("| dtype | run | identical greedy texts vs 1 rank | identical sampled texts vs 1 rank "
          "| identical bytes | wall s (slowest engine start; generate greedy + sampled) | error |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    n = args.prompts
    for dtype, name, r, ref in rows:
        if r["errors"]:
            err = "; ".join(r["errors"]).replace("|", "/")
            print(f"| {dtype} | {name} | - | - | - | {r['wall']:.0f} | {err} |")
            continue
        if r is ref:
            same, identical = {m: "(reference)" for m in MODES}, "-"
        elif ref["errors"]:
            same = {m: "-" for m in MODES}
            identical = "-"
        else:
            same = {m: f"{sum(a == b for a, b in zip(r[m], ref[m]))}/{n}" for m in MODES}
            identical = "yes" if all(json.dumps(r[m]) == json.dumps(ref[m]) for m in MODES) else "no"
        secs = " + ".join(f"{r['seconds'][m]:.0f}" for m in MODES)
        print(f"| {dtype} | {name} | {same['greedy']} | {same['sampled']} | {identical} "
              f"| {r['wall']:.0f} ({r['start']:.0f}; {secs}) | |")
    print("\ncommand: " + shlex.join([Path(sys.executable).name, *sys.argv]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
