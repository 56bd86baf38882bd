"""DataParallelBackend without vLLM: its ranks are real subprocesses running SyntheticBackend
(SELFTAUGHT_DP_STANDIN=1), so the split, the order of the answers, the summed usage and a dead rank are
checked here; tests/e2e/test_vllm_engine.py runs it on vLLM's CPU build."""

import pickle

import pytest
import yaml

from selftaught.backends import Request, Sampling, SyntheticBackend, make_backend
from selftaught.backends.data_parallel import DataParallelBackend, merge, shares
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
