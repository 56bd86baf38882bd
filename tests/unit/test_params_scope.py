"""Which generation keys can change a stage's bytes. A key may stay out of a stage's `params` in dvc.yaml only
if changing it leaves the outputs byte-identical; this measures it on the tiny model, in both dtypes, for the
three things the generating stages produce (sampled text, verdict-token margins, response log-probs)."""

import json

import pytest
from support.repo import ROOT

from selftaught.backends import Request, Sampling, make_backend
from selftaught.core.config import Generation

PROMPTS = [f"Compare answer {i}: the judge reads {'two responses ' * (i % 5)}and picks one."
           for i in range(12)]
GENERATING = ("synthesize@1", "judge@1", "evaluate@1")


def outputs(model, dtype, batch_size, threads):
    be = make_backend(model, Generation(dtype=dtype, batch_size=batch_size, threads=threads))
    reqs = [Request.make([{"role": "user", "content": p}], seed=i) for i, p in enumerate(PROMPTS)]
    return json.dumps([be.generate(reqs, Sampling(12, 0.7, 0.9)), be.next_token_margins(reqs),
                       be.continuation_logprobs(reqs, [" the first answer is better"] * len(reqs))])


def declared(stage):
    """The generation keys a stage's params name (a whole section counts as every key)."""
    import dvc.repo

    with dvc.repo.Repo(str(ROOT)) as repo:
        st = next(s for s in repo.index.stages if s.name == stage)
        keys = set()
        for dep in st.deps:
            if type(dep).__name__ == "ParamsDependency":
                keys |= {k for k in (dep.params or [])}
        return keys


@pytest.mark.parametrize("key, values", [("batch_size", (1, 5, 16)), ("threads", (1, 2))])
def test_keys_left_out_of_a_stage_do_not_change_its_bytes(tiny_model, key, values):
    base = {"batch_size": 16, "threads": 2}
    same = {}
    for dtype in ("float32", "bfloat16"):
        runs = {v: outputs(tiny_model, dtype, **{**base, key: v}) for v in values}
        same[dtype] = len(set(runs.values())) == 1
    for stage in GENERATING:
        keys = declared(stage)
        if "generation" not in keys and f"generation.{key}" not in keys:
            assert all(same.values()), (f"{stage} leaves generation.{key} out, "
                                        f"but it changes the bytes: {same}")
    print(key, same)
