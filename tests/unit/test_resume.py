"""The synthesis recipe: rewrite pairs (one call), category selection, and resumable judge/synthesize chunks
(unit level, fake backends; the stages on the tiny model are in tests/test_synth_recipe_stages.py)."""

from pathlib import Path

import pytest
from test_adaptive import FakeBackend, pairs

from selftaught.backends import GenerationBackend, Sampling
from selftaught.categories import parse_category
from selftaught.core.config import Data, Synthesize
from selftaught.data import keep_categories
from selftaught.judging import judge_adaptive, judge_pairs
from selftaught.prompts import REWRITE_EXAMPLES, rewrite_answer_text, rewrite_messages
from selftaught.resume import ChunkStore
from selftaught.core.schemas import Instruction
from selftaught.synthesize import parse_rewrite, synthesize, usable_variant

X = "Explain the ending of the movie Shutter Island."


def test_parse_rewrite_reads_two_labelled_blocks():
    assert parse_rewrite("NEW INSTRUCTION: Explain the ending of Inception.\nNEW ANSWER: It is a dream.") == \
        ("Explain the ending of Inception.", "It is a dream.", None)
    assert parse_rewrite("**New instruction:** Why is snow white?\n\n**New answer:** Light scatters.\nMore.")[2] is None
    assert parse_rewrite("Explain the ending of Inception.")[2] == "unparseable"
    assert parse_rewrite("NEW ANSWER: only an answer")[2] == "unparseable"
    assert parse_rewrite("NEW INSTRUCTION: Why is snow white?\nNEW ANSWER:   ")[2] == "empty_answer"
    for x, y, x2, y2 in REWRITE_EXAMPLES:     # our examples are in the format we parse, and usable
        assert parse_rewrite(rewrite_answer_text(x2, y2)) == (x2, y2, None)
        assert usable_variant(x, x2) is None
    msgs = rewrite_messages(X, "The hero was the patient.", shots=2)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 2 + ["user"]
    assert X in msgs[-1]["content"] and "The hero was the patient." in msgs[-1]["content"]


class ScriptedBackend(GenerationBackend):
    """Answers each request by a rule on its last user message; records every request."""

    name = "scripted"

    def __init__(self, rewrites):
        super().__init__()
        self.rewrites, self.seen, self.requests = rewrites, [], []

    def generate(self, requests, sampling, desc="generate"):
        out = []
        for r in requests:
            user = dict(r.messages[-1])["content"]
            self.seen.append(user)
            self.requests.append(r.message_dicts())
            if user.startswith("Below is an instruction and a good answer"):
                x = user.split("Instruction: ")[1].split("\n")[0]
                out.append(self.rewrites[x])
            elif user.startswith("Below is an instruction."):
                out.append("Explain the plot of a different movie in detail.")
            else:
                out.append(f"good answer to: {user}")
        self.usage.requests += len(requests)
        return out

    def next_token_margins(self, requests, options=("A", "B"), desc=""):
        raise AssertionError

    def continuation_logprobs(self, requests, continuations, desc=""):
        raise AssertionError


def test_rewrite_pairs_come_from_one_call_and_failures_are_counted():
    xs = [Instruction(f"i{n}", x) for n, x in enumerate([
        "Explain the ending of the movie Shutter Island.", "Give three tips for keeping houseplants alive.",
        "Write a poem about the sea at night.", "List the planets of the solar system.",
        "Describe how bread is baked at home."])]
    rewrites = {
        xs[0].instruction: "NEW INSTRUCTION: Explain the ending of the movie Inception.\nNEW ANSWER: Cobb may be dreaming.",
        xs[1].instruction: "I like plants.",                                                    # unparseable
        xs[2].instruction: "NEW INSTRUCTION: Write a poem about the sea at dawn.\nNEW ANSWER:",  # empty answer
        xs[3].instruction: "NEW INSTRUCTION: List the moons of the planet Jupiter.\nNEW ANSWER: "
                           "good answer to: List the planets of the solar system.",              # same as chosen
        xs[4].instruction: "NEW INSTRUCTION: Sure, here is one.\nNEW ANSWER: Bread.",            # chatter
    }
    p = Synthesize(pairs="rewrite", modify_shots=1)
    backend = ScriptedBackend(rewrites)
    got, m = synthesize(backend, "models/generator", xs, p)
    assert backend.usage.requests == 2 * len(xs)          # x's answer, then one rewrite call each
    assert sum(s.startswith("Below is an instruction and a good answer") for s in backend.seen) == len(xs)
    assert not any(s.startswith("Below is an instruction.\n") for s in backend.seen)   # no two-step request
    by_id = {q.id: q for q in got}
    assert by_id["i0"].negative_source == "modified" and by_id["i0"].rejected == "Cobb may be dreaming."
    assert by_id["i0"].negative_instruction == "Explain the ending of the movie Inception."
    assert {q.negative_source for q in got if q.id != "i0"} == {"neighbour"}
    assert (m["rewrite_parsed"], m["rewrite_unparseable"], m["rewrite_empty_answer"]) == (3, 1, 1)
    assert (m["rewrite_same_as_chosen"], m["variant_chatter"], m["variant_ok"]) == (1, 1, 2)
    assert (m["negative_modified"], m["negative_neighbour"]) == (1, 4)
    dropped, md = synthesize(ScriptedBackend(rewrites), "g", xs, p.model_copy(update={"fallback": "drop"}))
    assert [q.id for q in dropped] == ["i0"] and md["dropped_no_variant"] == 4
    # switched off (two_step): x' comes from its own request, and no rewrite metrics
    _, m2 = synthesize(ScriptedBackend(rewrites), "g", xs, Synthesize(pairs="two_step"))
    assert not any(k.startswith("rewrite_") for k in m2)


def test_categories_parse_and_filter():
    cats = ["reasoning", "coding", "math", "writing", "other"]
    assert parse_category("Coding.", cats) == "coding"
    assert parse_category("Category: **math**", cats) == "math"
    assert parse_category("I think it is mathematics", cats) is None
    pool = [Instruction(f"i{n}", f"instruction {n}") for n in range(5)]
    labels = {"i0": "coding", "i1": "math", "i2": "unparseable", "i3": "coding", "i4": "writing"}
    kept, counts = keep_categories(pool, labels, ["coding", "math"])
    assert [x.id for x in kept] == ["i0", "i1", "i3"]
    assert counts == {"labelled": {"coding": 2, "math": 1, "unparseable": 1, "writing": 1},
                      "kept": {"coding": 2, "math": 1}}
    assert len(keep_categories(pool, labels, [])[0]) == 5
    with pytest.raises(ValueError, match="distinct"):
        Data(categories=["math", "math"])


class Killed(Exception):
    pass


class KillingStore(ChunkStore):
    """A store whose process 'dies' after `after` computed chunks."""

    def __init__(self, root, salt, after):
        super().__init__(root, salt)
        self.after = after

    def put(self, key, value):
        super().put(key, value)
        if self.computed >= self.after:
            raise Killed


class CachingFake(FakeBackend):
    """Like the transformers backend's prompt cache: a prompt scored before gives a slightly different margin
    (its state was computed in another batch), so a resumed run must rebuild what earlier calls left behind."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.scored_prompts = set()

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        got = super().next_token_margins(requests, options, desc)
        out = [m + (1e-3 if r.messages in self.scored_prompts else 0.0) for r, m in zip(requests, got)]
        self.scored_prompts |= {r.messages for r in requests}
        return out


def generated(backend):
    return sum(n for kind, n in backend.calls if kind == "generate")


@pytest.mark.parametrize("mode, after", [("free", 6), ("constrained", 5), ("constrained", 6)])
def test_a_killed_adaptive_judge_resumes_to_the_same_judgments(tmp_path, mode, after):
    """Killed after `after` chunks of 16 (round 1 has 5: 40 pairs x 2 orders), rerun: the same judgments."""
    ps, sampling = pairs(40), Sampling(16, 0.7, 0.9)
    whole = CachingFake(batch_size=4)
    ref, ref_stats = judge_adaptive(whole, ps, mode, 4, 1, sampling, 7, True, 800, store=ChunkStore(tmp_path / "a", {}),
                                    chunk_size=16)
    plain, _ = judge_adaptive(CachingFake(batch_size=4), ps, mode, 4, 1, sampling, 7, True, 800)
    assert ref == plain                                   # a store alone changes nothing
    root = tmp_path / "b"
    with pytest.raises(Killed):
        judge_adaptive(CachingFake(batch_size=4), ps, mode, 4, 1, sampling, 7, True, 800,
                       store=KillingStore(root, {}, after=after), chunk_size=16)
    assert len(list(root.glob("*.json"))) == after
    again, store = CachingFake(batch_size=4), ChunkStore(root, {})
    got, stats = judge_adaptive(again, ps, mode, 4, 1, sampling, 7, True, 800, store=store, chunk_size=16)
    assert got == ref and stats == ref_stats              # usage of loaded chunks is counted: same metrics
    assert store.loaded == after and 0 < generated(again) < generated(whole)
    assert store.summary().startswith(f"resumed {after} of {store.loaded + store.computed} chunks")
    other = ChunkStore(root, {"model": "another"})        # another model (or params, code) reuses nothing
    judge_adaptive(FakeBackend(batch_size=4), ps, mode, 4, 1, sampling, 7, True, 800, store=other, chunk_size=16)
    assert other.loaded == 0
    store.finish()
    assert not root.exists()


def test_a_killed_fixed_n_judge_resumes(tmp_path):
    ps, sampling = pairs(10), Sampling(16, 0.7, 0.9)
    ref = judge_pairs(FakeBackend(), ps, ["constrained"], 3, sampling, 5, True, 800)
    with pytest.raises(Killed):
        judge_pairs(FakeBackend(), ps, ["constrained"], 3, sampling, 5, True, 800, store=KillingStore(tmp_path, {}, 2),
                    chunk_size=8)
    store = ChunkStore(tmp_path, {})
    assert judge_pairs(FakeBackend(), ps, ["constrained"], 3, sampling, 5, True, 800, store=store, chunk_size=8) == ref
    assert store.loaded == 2 and store.computed == 6


def test_chunk_dir_is_ignored_by_git_and_dvc():
    root = Path(__file__).resolve().parents[1]
    assert ".*.chunks/" in (root / ".gitignore").read_text().split("\n")
    assert ".*.chunks/" in (root / ".dvcignore").read_text().split("\n")


@pytest.mark.parametrize("pairs", ["two_step", "rewrite"])
def test_a_long_instruction_is_cut_to_fit_the_prompt_budget_not_in_the_pair(pairs):
    """A pool instruction far over generation.max_prompt_tokens: its prompts are fitted by cutting the
    instruction (counted), so the backend never cuts a prompt's start (system prompt, worked examples); prompts
    that fit are untouched; the pair keeps the whole instruction."""
    long = "Explain the ending of the movie Shutter Island " + "in great detail, " * 400 + "please."
    xs = [Instruction("i0", long), Instruction("i1", "Give three tips for keeping houseplants alive.")]
    rewrites = DefaultRewrites({xs[1].instruction: "NEW INSTRUCTION: Give three tips for growing herbs.\n"
                                                   "NEW ANSWER: Sun."})

    def counting(backend):                   # a backend with a tokenizer: 4 characters a token
        backend.tok = object()
        backend.prompt_length = lambda msgs: sum(len(m["content"]) for m in msgs) // 4
        return backend

    budget = 1200
    fitted = counting(ScriptedBackend(rewrites))
    got, m = synthesize(fitted, "g", xs, Synthesize(pairs=pairs), max_prompt_tokens=budget)
    assert m["prompts_cut_to_fit"] == 1
    sent = fitted.requests
    assert all(fitted.prompt_length(r) <= budget for r in sent)
    assert [r[:-1] for r in sent if long[:40] in r[-1]["content"]] == \
        [r[:-1] for r in sent if long[:40] in r[-1]["content"] and long not in r[-1]["content"]]
    assert {q.id: q.instruction for q in got}["i0"] == long
    plain = counting(ScriptedBackend(rewrites))
    _, m = synthesize(plain, "g", xs, Synthesize(pairs=pairs))                  # no budget: nothing cut
    assert m["prompts_cut_to_fit"] == 0 and any(long in s for s in plain.seen)
    short = [r for r in sent if xs[1].instruction in r[-1]["content"]]          # prompts that fit: untouched
    assert short and short == [r for r in plain.requests if xs[1].instruction in r[-1]["content"]]
    # a budget the template alone exceeds: left to the backend's last-resort cut, counted, not fatal
    _, m = synthesize(counting(ScriptedBackend(rewrites)), "g", xs, Synthesize(pairs=pairs), max_prompt_tokens=10)
    assert m["prompts_over_budget"] == 2                # both instructions: their worked-example prompts


class DefaultRewrites(dict):
    """Rewrite replies by instruction ('' when unknown: unparseable)."""

    def __getitem__(self, x):
        return self.get(x, "")
