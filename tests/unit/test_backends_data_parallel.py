"""DataParallelBackend without vLLM: its ranks are real subprocesses running SyntheticBackend
(SELFTAUGHT_DP_STANDIN=1), so the split, the order of the answers, the summed usage, a dead rank, and ranks
joining from "another machine" (`selftaught dp-join` on localhost, with and without the key) are checked
here; tests/e2e/test_vllm_engine.py runs it on vLLM's CPU build."""

import pickle
import subprocess
import sys

import pytest
import yaml
from support.repo import run_env

from selftaught.backends import Request, Sampling, SyntheticBackend, make_backend
from selftaught.backends.data_parallel import (
                                              ADDR_ENV,
                                              KEY_ENV,
                                              LOCAL_ENV,
                                              WAIT_ENV,
                                              DataParallelBackend,
                                              Placement,
                                              free_port,
                                              merge,
                                              placement,
                                              shares,
)
from selftaught.backends.dp_rank import STANDIN_ENV, failure
from selftaught.core import config
from selftaught.core.config import Generation
from selftaught.core.errors import InputError, ParamError


def test_rank_r_takes_every_nth_request_and_answers_come_back_in_order():
    assert shares(5, 2) == [[0, 2, 4], [1, 3]]
    assert shares(1, 3) == [[0], [], []]
    idx = shares(7, 3)
    assert merge([[f"r{i}" for i in part] for part in idx], idx, 7) == [f"r{i}" for i in range(7)]
    assert merge([["a", "b"], ["dropped"]], [[0, 1], []], 2) == ["a", "b"]


@pytest.fixture
def dp(monkeypatch, tiny_model):
    monkeypatch.setenv(STANDIN_ENV, "1")
    backend = make_backend(tiny_model, Generation(backend="vllm", data_parallel_size=3))
    yield backend
    backend.close()


def requests(n):
    return [Request.make([{"role": "user", "content": f"question {i}"}], seed=100 + i) for i in range(n)]


def test_two_or_more_ranks_answer_as_one_backend(dp, tiny_model):
    one = SyntheticBackend(tiny_model)
    assert isinstance(dp, DataParallelBackend) and len(dp.procs) == 3
    assert dp.engine_ranks == [[0, 3], [1, 3], [2, 3]]
    assert dp.tok is not None and dp.prompt_length([{"role": "user", "content": "hi"}]) == \
        one.prompt_length([{"role": "user", "content": "hi"}])
    s = Sampling(24, 0.7, 0.9)
    for n in (7, 1):                  # 1: two ranks get an empty share (a copy of request 0, dropped)
        reqs = requests(n)
        assert dp.generate(reqs, s) == one.generate(reqs, s)
        assert dp.next_token_margins(reqs) == one.next_token_margins(reqs)
        conts = [f"answer {i}" for i in range(n)]
        assert dp.continuation_logprobs(reqs, conts) == one.continuation_logprobs(reqs, conts)
    assert dp.generate([], s) == []
    for counter in ("requests", "generated_tokens", "scored"):      # summed over ranks, dropped copies not
        assert getattr(dp.usage, counter) == getattr(one.usage, counter) > 0, counter


def test_tensor_parallel_engines_are_tp_ranks_that_take_the_same_share(monkeypatch, tiny_model):
    """data_parallel_size 2 x tensor_parallel_size 2: 4 ranks, engine e = ranks 2e and 2e+1 (vLLM's
    RANK // tensor_parallel_size); one answer and one usage count per engine."""
    monkeypatch.setenv(STANDIN_ENV, "1")
    dp = make_backend(tiny_model, Generation(backend="vllm", data_parallel_size=2, tensor_parallel_size=2))
    try:
        assert len(dp.procs) == 4 and dp.engine_ranks == [[0, 2], [0, 2], [1, 2], [1, 2]]
        one, reqs, s = SyntheticBackend(tiny_model), requests(5), Sampling(24, 0.7, 0.9)
        assert dp.generate(reqs, s) == one.generate(reqs, s)
        assert dp.usage.requests == one.usage.requests == 5
    finally:
        dp.close()
    assert [p.returncode for p in dp.procs] == [0, 0, 0, 0]     # hung up on, they exit normally: not killed


def test_a_rank_that_dies_ends_the_call_with_its_rank_not_a_hang(dp):
    dp.procs[1].kill()
    dp.procs[1].wait()
    with pytest.raises(RuntimeError, match="rank 1 of 3: exited"):
        dp.generate(requests(4), Sampling(8))
    assert all(p.poll() is not None for p in dp.procs)        # the other ranks are ended too


def test_bad_input_from_a_rank_is_raised_as_the_stage_raises_it():
    kind, e = failure(ParamError("generation.backend", "no likelihood with a LoRA adapter here"))
    assert kind == "raise"
    back = pickle.loads(pickle.dumps(e))
    assert isinstance(back, ParamError) and str(back) == str(e)
    back = pickle.loads(pickle.dumps(InputError("m/adapter_config.json", "bad rank", line=3, field="r")))
    assert str(back) == "m/adapter_config.json, line 3: field 'r': bad rank"
    assert failure(ValueError("boom")) == ("error", "ValueError: boom")


def test_data_parallel_size_needs_the_vllm_backend():
    p = yaml.safe_load(open("params.yaml"))
    with pytest.raises(ParamError, match="generation.data_parallel_size: .*needs generation.backend vllm"):
        config.validate({**p, "generation": {**p["generation"], "data_parallel_size": 2}})
    config.validate({**p, "generation": {**p["generation"], "backend": "vllm", "data_parallel_size": 2},
                     "evaluate": {**p["evaluate"], "likelihood_dtype": p["generation"]["dtype"]}})


def test_where_ranks_run_comes_from_the_environment_and_bad_values_name_the_variable():
    assert placement(4, {}) == Placement(4)
    env = {LOCAL_ENV: "1", ADDR_ENV: "node0:29600", KEY_ENV: "s3cret"}
    assert placement(4, env) == Placement(1, ("node0", 29600), b"s3cret", 600.0)
    for bad, match in [({LOCAL_ENV: "0"}, "SELFTAUGHT_DP_LOCAL: .*1 to generation.data_parallel_size"),
                       ({LOCAL_ENV: "5"}, "SELFTAUGHT_DP_LOCAL"),
                       ({ADDR_ENV: ""}, "SELFTAUGHT_DP_ADDR: 3 ranks run on other machines"),
                       ({ADDR_ENV: "node0"}, "SELFTAUGHT_DP_ADDR: HOST:PORT"),
                       ({KEY_ENV: ""}, "SELFTAUGHT_DP_KEY: ranks on other machines need a shared secret"),
                       ({WAIT_ENV: "soon"}, "SELFTAUGHT_DP_WAIT: seconds")]:
        with pytest.raises(ParamError, match=f"^environment: {match}"):
            placement(4, {**env, **bad})


def one_local_rank(monkeypatch, key, wait) -> int:
    """The stage's environment for rank 0 here and the rest joining at a free port of localhost."""
    port = free_port()
    env = {STANDIN_ENV: "1", LOCAL_ENV: "1", ADDR_ENV: f"127.0.0.1:{port}", KEY_ENV: key, WAIT_ENV: str(wait)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return port


def joiner(port, ranks, key, wait=8):
    """`selftaught dp-join` as another machine would run it (here: this one), with stand-in ranks."""
    env = {**run_env(), STANDIN_ENV: "1", KEY_ENV: key}
    return subprocess.Popen([sys.executable, "-m", "selftaught.cli", "dp-join", f"127.0.0.1:{port}",
                             "--ranks", str(ranks), "--wait", str(wait)], env=env, stderr=subprocess.PIPE,
                            text=True)


def test_ranks_of_another_machine_join_the_group_and_answer_their_shares(monkeypatch, tiny_model):
    port = one_local_rank(monkeypatch, "k1", 120)
    other = joiner(port, 2, "k1")
    dp = make_backend(tiny_model, Generation(backend="vllm", data_parallel_size=3))
    try:
        assert len(dp.procs) == 1 and dp.engine_ranks == [[0, 3], [1, 3], [2, 3]]
        one, reqs, s = SyntheticBackend(tiny_model), requests(7), Sampling(24, 0.7, 0.9)
        assert dp.generate(reqs, s) == one.generate(reqs, s)
        assert dp.next_token_margins(reqs[:1]) == one.next_token_margins(reqs[:1])
    finally:
        dp.close()
    _, log = other.communicate(timeout=120)     # its next set of ranks waits 8 s for a stage, then it ends
    assert other.returncode == 0 and "engine groups served: 1" in log, log


def test_a_rank_without_the_key_is_refused_and_the_stage_says_who_is_missing(monkeypatch, tiny_model):
    port = one_local_rank(monkeypatch, "right", 15)
    other = joiner(port, 1, "wrong", wait=60)
    with pytest.raises(RuntimeError, match=r"waited 15 s \(SELFTAUGHT_DP_WAIT\) at 127.0.0.1:\d+ for 1 ranks "
                                           r"of other machines; joined: none"):
        make_backend(tiny_model, Generation(backend="vllm", data_parallel_size=2))
    _, log = other.communicate(timeout=60)
    assert other.returncode == 1 and "set the same SELFTAUGHT_DP_KEY on both machines" in log, log
