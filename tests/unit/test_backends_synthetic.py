"""The synthetic stand-in backend (generation.backend synthetic): registered in the factory, deterministic per
request, texts of about a model's length that every consumer parses (judge verdicts in both formats,
synthesized pairs in both constructions, category labels), plausible margins and log-probs, near-zero cost;
and the mark its runs carry in metrics, reports and model cards."""

import math
import time

import pytest

from selftaught.backends import Request, Sampling, SyntheticBackend, make_backend
from selftaught.core.config import Generation, Synthesize
from selftaught.core.schemas import Instruction, SyntheticPair
from selftaught.prompts import JudgePrompt, ordered
from selftaught.verdict import verdict_format

PAIRS = [SyntheticPair(f"p{i}", f"Explain how tides work near coast {i}.", f"The moon pulls water {i} times.",
                       f"Coasts are long {i}.", f"Explain waves {i}.", "modified", "m", 0) for i in range(40)]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return make_backend(tiny_model, Generation(backend="synthetic"))


def test_the_factory_makes_it_with_the_models_tokenizer_and_no_model(backend):
    assert isinstance(backend, SyntheticBackend) and backend.name == "synthetic"
    assert backend.tok is not None and not hasattr(backend, "model")
    assert backend.prompt_length([{"role": "user", "content": "hi"}]) > 1


def judge_requests(template=None, verdict=None, n=len(PAIRS)):
    prompt = JudgePrompt(template, verdict, max_chars=300)
    return [Request.make(prompt.messages(p.instruction, *ordered(p, o)), seed=s)
            for p in PAIRS[:n] for o in (0, 1) for s in range(2)]


def test_outputs_are_a_function_of_the_request_alone(backend):
    reqs = judge_requests()
    sampled, greedy = Sampling(64, 0.7, 0.9), Sampling(64, 0.0, 1.0)
    out = backend.generate(reqs, sampled)
    assert backend.generate(reqs[::-1], sampled) == out[::-1]                 # order, batch: no effect
    assert [backend.generate([r], sampled)[0] for r in reqs[:5]] == out[:5]
    assert len(set(out)) == len(out)                                         # each sample its own text
    same_item = [Request.make(reqs[0].message_dicts(), seed=s) for s in range(4)]
    assert len(set(backend.generate(same_item, greedy))) == 1                # greedy ignores the seed
    assert len(set(backend.generate(same_item, sampled))) == 4
    assert backend.next_token_margins(reqs) == backend.next_token_margins(reqs)


@pytest.mark.parametrize("template, fmt", [(None, "last_line"),
                                           ("src/selftaught/templates/judge_pairwise.yaml", "bracket")])
def test_judgments_have_a_models_length_and_parse_in_the_prompts_format(backend, template, fmt):
    from support.repo import ROOT

    reqs = judge_requests(template and ROOT / template, fmt)
    texts = backend.generate(reqs, Sampling(100, 0.7, 0.9))
    parse = verdict_format(fmt).parse
    verdicts = [parse(t) for t in texts]
    assert 0.8 <= sum(v is not None for v in verdicts) / len(texts) < 1.0     # a few unparseable
    assert 0.3 < sum(v == "A" for v in verdicts) / len(texts) < 0.7
    assert all(100 < len(t) <= 100 * 4 for t in texts)                     # ~4 characters a token
    assert backend.usage.requests >= len(reqs) and backend.usage.generated_tokens > len(reqs) * 25


@pytest.mark.parametrize("construction", ["two_step", "rewrite"])
def test_synthesis_makes_modified_pairs_from_its_texts(backend, construction):
    from selftaught.synthesize import synthesize

    xs = [Instruction(p.id, p.instruction) for p in PAIRS]
    p = Synthesize(pairs=construction, fallback="drop", modify_shots=3 if construction == "two_step" else 0)
    pairs, m = synthesize(backend, "models/iter_0", xs, p)
    assert len(pairs) >= 0.8 * len(xs) and m["negative_modified"] == len(pairs)
    assert all(q.chosen != q.rejected and q.negative_instruction != q.instruction for q in pairs)


def test_category_labels_parse(backend):
    from selftaught.categories import label

    cats = ["reasoning", "coding", "writing"]
    got = label(backend, [Instruction(p.id, p.instruction) for p in PAIRS], cats, 8, 800)
    assert {r["category"] for r in got} == set(cats)


def test_margins_and_log_probs_are_plausible_numbers(backend):
    reqs = judge_requests(n=10)
    margins = backend.next_token_margins(reqs)
    assert all(-3 <= m < 3 for m in margins) and len(set(margins)) == len(margins) // 2   # the seed: no part
    short, long = (backend.continuation_logprobs(reqs, [c] * len(reqs)) for c in ("Yes.", "Yes. " * 40))
    assert all(math.isfinite(x) and x < 0 for x in short + long)
    assert all(lo < s for lo, s in zip(long, short))                         # longer: less likely


def test_it_costs_next_to_nothing(backend):
    reqs = [Request.make([{"role": "user", "content": f"Write about {i}."}], seed=i) for i in range(2000)]
    t = time.perf_counter()
    texts = backend.generate(reqs, Sampling(2048, 0.7, 0.9))
    assert time.perf_counter() - t < 5.0
    assert all(700 <= len(x) <= 600 * 4 for x in texts)            # a few hundred tokens, not 2048


def test_runs_with_it_are_marked_in_metrics_reports_and_model_cards(tmp_path):
    import json

    from selftaught import model_card
    from selftaught.core.config import Params
    from selftaught.core.metrics import SYNTHETIC, marked, synthetic_mark
    from selftaught.report import write_report

    stand_in = Params(generation=Generation(backend="synthetic"))
    assert synthetic_mark(stand_in) == {"generator": SYNTHETIC} and synthetic_mark(Params()) == {}
    head = {"free": {"accuracy": 0.5, "accuracy_stderr": 0.1, "parse_rate": 1.0, "position_consistency": 0.5}}
    files = []
    for k in (0, 1):
        files.append(tmp_path / f"iter_{k}.json")
        files[-1].write_text(json.dumps({"iteration": k, **head, **synthetic_mark(stand_in)}))
    assert marked(files) == {"generator": SYNTHETIC}
    write_report(files, tmp_path / "reports", validation_files=files)
    assert SYNTHETIC in (tmp_path / "reports/summary.md").read_text()
    assert json.loads((tmp_path / "reports/best.json").read_text())["generator"] == SYNTHETIC
    card = model_card.render(model_card.Card(1, "train@1", metrics={"steps": 2, **synthetic_mark(stand_in)}))
    assert f"**Generator: {SYNTHETIC}.**" in card
    assert "Generator:" not in model_card.render(model_card.Card(1, "train@1", metrics={"steps": 2}))
