import pytest

from selftaught.core.schemas import Judgment, SyntheticPair
from selftaught.filtering import preference_pairs, rejection_sample, training_records
from selftaught.verdict import parse_verdict


def J(pid, order, sample, verdict, text="r"):
    return Judgment(pid, order, sample, text, verdict, "free")


def test_keeps_one_correct_per_item_and_drops_the_rest():
    js = [J("p", 0, 0, "B"), J("p", 0, 1, "A"), J("p", 0, 2, "A"), J("p", 1, 0, None), J("p", 1, 1, "A"),
          J("q", 0, 0, "A"), J("q", 1, 0, "B")]
    kept, stats = rejection_sample(js, seed=0, balance=False)
    assert [(j.pair_id, j.order) for j in kept] == [("p", 0), ("q", 0), ("q", 1)]
    assert all(j.correct for j in kept)
    assert stats["dropped_no_correct"] == 1 and stats["items"] == 4 and stats["judgments"] == 7
    assert stats["parseable"] == 6 and stats["correct"] == 4


def test_balance_equalises_a_and_b_wins():
    js = [J(f"p{i}", 0, 0, "A") for i in range(6)] + [J(f"p{i}", 1, 0, "B") for i in range(2)]
    kept, stats = rejection_sample(js, seed=1, balance=True)
    assert sum(j.verdict == "A" for j in kept) == sum(j.verdict == "B" for j in kept) == 2
    assert stats["a_share"] == 0.5 and stats["dropped_balance"] == 4


def test_selection_is_seeded():
    js = [J("p", 0, s, "A", text=f"t{s}") for s in range(5)]
    pick = lambda seed: rejection_sample(js, seed, False)[0][0].text  # noqa: E731
    assert pick(3) == pick(3)
    assert len({pick(s) for s in range(20)}) > 1


def test_training_records_are_prompt_completion_in_free_format():
    pair = SyntheticPair("p", "x", "good", "bad", "x2", "modified", "m", 0)
    recs, counts = training_records([J("p", 1, 0, "B", text="B fits x.\nVerdict: [[B]]")], {"p": pair}, 1000)
    (r,) = recs
    assert counts == {"records": 1, "with_reasoning": 1, "reasoning_dropped_as_copy": 0}
    assert r["completion"][0]["content"] == "B fits x.\nVerdict: [[B]]"
    assert r["prompt"][-1]["role"] == "user" and "<<<RESPONSE A\nbad\n" in r["prompt"][-1]["content"]
    assert parse_verdict(r["completion"][0]["content"]) == "B"


def test_reasoning_that_copies_a_judged_response_is_dropped():
    good = "The capital of France is Paris, a city on the Seine with many museums."
    pair = SyntheticPair("p", "Name the capital of France.", good, "Berlin is in Germany.", "x2", "modified",
                         "m", 0)
    copy = J("p", 0, 0, "A", text="the capital of France is Paris, a city\nVerdict: [[A]]")
    quoted = J("p", 1, 0, "B", text="<<<RESPONSE A says Berlin\nVerdict: [[B]]")
    own = J("p", 1, 1, "B", text="B names the right city.\nVerdict: [[B]]")
    recs, counts = training_records([copy, quoted, own], {"p": pair}, 1000)
    assert [r["completion"][0]["content"] for r in recs] == ["Verdict: [[A]]", "Verdict: [[B]]",
                                                              "B names the right city.\nVerdict: [[B]]"]
    assert counts == {"records": 3, "with_reasoning": 1, "reasoning_dropped_as_copy": 2}
    kept_as_is, _ = training_records([copy], {"p": pair}, 1000, reasoning="keep")
    assert kept_as_is[0]["completion"][0]["content"].startswith("the capital of France")
    none, _ = training_records([own], {"p": pair}, 1000, reasoning="none")
    assert none[0]["completion"][0]["content"] == "Verdict: [[B]]"


def test_preference_pairs_put_a_correct_judgment_against_a_wrong_or_unparseable_one():
    from selftaught.filtering import preference_pairs

    pair = SyntheticPair("p", "x", "good", "bad", "x2", "modified", "m", 0)
    q = SyntheticPair("q", "y", "fine", "off", "y2", "modified", "m", 0)
    js = [J("p", 0, 0, "B", "A is off topic.\nVerdict: [[B]]"),
          J("p", 0, 1, "A", "A answers x.\nVerdict: [[A]]"),
          J("p", 1, 0, None, "I cannot tell"), J("p", 1, 1, "B", "B answers x.\nVerdict: [[B]]"),
          J("p", 1, 2, None, "  "),                           # an empty unparseable text is no candidate
          J("q", 0, 0, "A", "Verdict: [[A]]"),                # only correct
          J("q", 1, 0, "A", "Verdict: [[A]]"), J("q", 1, 1, None, "")]   # only wrong
    prefs, counts = preference_pairs(js, {"p": pair, "q": q}, seed=0, balance=False, max_chars=1000)
    assert [r["id"] for r in prefs] == ["p:0", "p:1"]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in prefs] == [
        ("A answers x.\nVerdict: [[A]]", "A is off topic.\nVerdict: [[B]]"),
        ("B answers x.\nVerdict: [[B]]", "I cannot tell")]
    assert counts == {"preference_pairs": 2, "preference_items_correct_and_wrong": 2,
                      "preference_items_only_correct": 1, "preference_items_only_wrong": 1,
                      "preference_items_empty": 0, "preference_dropped_balance": 0,
                      "preference_rejected_unparseable": 1}
    sft, _ = training_records(rejection_sample(js, 0, False)[0], {"p": pair, "q": q}, 1000)
    by_id = {r["id"]: r for r in sft}
    for r in prefs:                  # the SFT record's prompt, and its target as the chosen judgment
        assert r["prompt"] == by_id[r["id"]]["prompt"] and r["chosen"] == by_id[r["id"]]["completion"]


def test_preference_choice_is_seeded_and_balanced():
    from selftaught.filtering import preference_pairs

    pairs = {f"p{i}": SyntheticPair(f"p{i}", "x", "good", "bad", "x2", "modified", "m", 0) for i in range(6)}
    js = [J(f"p{i}", 0, s, v, f"{v} {s}") for i in range(6)
          for s, v in enumerate(["A", "B", "B", "B", "B", "A"])]
    js += [J("p0", 1, 0, "B", "b"), J("p0", 1, 1, "A", "a")]

    def pick(seed):
        return [r["rejected"][0]["content"] for r in preference_pairs(js, pairs, seed, False, 1000)[0]]

    assert pick(3) == pick(3)
    assert len({tuple(pick(s)) for s in range(10)}) > 1
    prefs, counts = preference_pairs(js, pairs, 0, True, 1000)
    assert sorted(parse_verdict(r["chosen"][0]["content"]) for r in prefs) == ["A", "B"]
    assert counts["preference_dropped_balance"] == 5 and counts["preference_items_correct_and_wrong"] == 7


def test_filter_stage_writes_preference_pairs_beside_the_sft_records(tmp_path):
    import json
    import subprocess
    import sys

    from support.fake_judgments import write_pairs_and_judgments
    from support.repo import ROOT

    write_pairs_and_judgments(tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl")
    out = {k: tmp_path / f for k, f in [("out", "train.jsonl"), ("preferences", "preferences.jsonl"),
                                         ("metrics", "filter.json")]}
    args = ["--pairs", tmp_path / "pairs.jsonl", "--judgments", tmp_path / "judgments.jsonl"]
    args += [a for k, v in out.items() for a in (f"--{k}", v)]
    p = subprocess.run([sys.executable, "stages/filter.py", "--iteration", "1", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    prefs = [json.loads(line) for line in out["preferences"].read_text().splitlines()]
    sft = {r["id"]: r for r in map(json.loads, out["out"].read_text().splitlines())}
    m = json.loads(out["metrics"].read_text())
    assert len(prefs) == m["preference_pairs"] == 8
    assert (m["preference_items_correct_and_wrong"], m["preference_items_only_correct"],
            m["preference_items_only_wrong"]) == (8, 2, 2)
    for r in prefs:
        assert set(r) == {"id", "prompt", "chosen", "rejected"} and r["chosen"] != r["rejected"]
        assert parse_verdict(r["chosen"][0]["content"]) == ("A" if r["id"].endswith(":0") else "B")
        assert parse_verdict(r["rejected"][0]["content"]) != parse_verdict(r["chosen"][0]["content"])
        if r["id"] in sft:
            assert r["prompt"] == sft[r["id"]]["prompt"]


def test_raw_targets_are_the_sampled_text_byte_for_byte():
    """filter.reasoning raw (the released code's targets): no verdict line rebuilt, nothing cleaned or cut."""
    good = "The capital of France is Paris, a city on the Seine with many museums."
    pair = SyntheticPair("p", "Name the capital of France.", good, "Berlin is in Germany.", "x2", "modified",
                         "m", 0)
    texts = ["the capital of France is Paris, a city\n\n**Verdict:** [[A]]  \n", "[[B]] because B fits. ",
             "Both fail, but [[A]] is better.\r\nFinal: [[A]]"]
    js = [J("p", 0, 0, "A", text=texts[0]), J("p", 1, 0, "B", text=texts[1]),
          J("p", 0, 1, "A", text=texts[2])]
    recs, counts = training_records(js, {"p": pair}, 10, reasoning="raw")
    assert [r["completion"][0]["content"].encode() for r in recs] == [t.encode() for t in texts]
    assert counts["reasoning_dropped_as_copy"] == 0
    rebuilt, _ = training_records(js, {"p": pair}, 10, reasoning="keep")     # what raw switches off
    assert [r["completion"][0]["content"] for r in rebuilt] != texts
    wrong = J("p", 0, 2, "B", text="B is right.\n[[B]]")
    prefs, _ = preference_pairs([js[0], wrong], {"p": pair}, 0, False, 10, "raw")
    assert prefs[0]["chosen"][0]["content"] == texts[0] and prefs[0]["rejected"][0]["content"] == wrong.text


def _mixed_fixture(tmp_path, n_pairs=40, seed=0):
    """Pairs and judgments of every kind, lines shuffled: correct, wrong, unparseable, blank, reasoning that
    copies a judged text, line separators inside strings."""
    import json
    import random

    rng = random.Random(seed)
    pairs, judgments = [], []
    for i in range(n_pairs):
        good = f"A good answer {i}: the capital is Paris, a city on the Seine\u2028with museums."
        p = SyntheticPair(f"p{i:03d}", f"Name the capital {i}.", good, f"Berlin {i}.", f"x2 {i}", "modified",
                          "m", 0)
        pairs.append(p)
        for order in (0, 1):
            for s in range(rng.randint(1, 4)):
                v = rng.choice(["A", "B", None, None if s else "A"])
                why = rng.choice([good[:40], f"reason {i} {s}", "", "<<<RESPONSE A quoted"])
                text = f"{why}\nVerdict: [[{v}]]" if v else rng.choice(["", "  ", f"rambling {s}"])
                judgments.append(Judgment(p.id, order, s, text, v, "free"))
    rng.shuffle(judgments)
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs))
    (tmp_path / "judgments.jsonl").write_text("".join(json.dumps(j.to_dict()) + "\n" for j in judgments))
    return tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl"


@pytest.mark.parametrize("balance, reasoning", [(True, "clean"), (False, "clean"), (True, "raw"),
                                                (False, "keep"), (True, "none")])
def test_the_streaming_filter_writes_the_bytes_of_the_whole_file_filter(tmp_path, balance, reasoning):
    """stream_filter (the stage's: offsets, then the chosen records read back) against the filter that read
    both files whole (read_jsonl, filter_judgments, write_jsonl): the same bytes and stats."""
    from selftaught.core.config import Filter
    from selftaught.core.io import read_jsonl, write_jsonl
    from selftaught.filtering import filter_judgments, stream_filter
    from selftaught.prompts import JudgePrompt

    pairs_path, judgments_path = _mixed_fixture(tmp_path)
    f, prompt = Filter(balance=balance, reasoning=reasoning, seed=3), JudgePrompt(max_chars=30)
    pairs = {p.id: p for p in read_jsonl(pairs_path, SyntheticPair)}
    judgments = [Judgment.from_dict(d, judgments_path, n)
                 for n, d in enumerate(read_jsonl(judgments_path), 1)]
    records, prefs, stats = filter_judgments(judgments, pairs, f, 30, prompt)
    write_jsonl(tmp_path / "old_train.jsonl", records)
    write_jsonl(tmp_path / "old_prefs.jsonl", prefs)
    new_stats = stream_filter(pairs_path, judgments_path, f, JudgePrompt(max_chars=30),
                              tmp_path / "train.jsonl", tmp_path / "prefs.jsonl")
    assert list(new_stats.items()) == list(stats.items())
    assert stats["records"] > 5 and stats["preference_pairs"] > 5 and stats["reasoning_dropped_as_copy"] + (
        reasoning != "clean") > 0
    for old, new in [("old_train.jsonl", "train.jsonl"), ("old_prefs.jsonl", "prefs.jsonl")]:
        assert (tmp_path / new).read_bytes() == (tmp_path / old).read_bytes()


def test_the_streaming_filter_names_a_judgment_of_an_unknown_pair(tmp_path):
    import json

    from selftaught.core.config import Filter
    from selftaught.core.errors import InputError
    from selftaught.filtering import stream_filter
    from selftaught.prompts import JudgePrompt

    pairs_path, judgments_path = _mixed_fixture(tmp_path, n_pairs=3)
    with open(judgments_path, "a") as fh:
        fh.write(json.dumps({"pair_id": "nope", "order": 0, "sample": 0, "text": "t", "verdict": "A",
                             "mode": "free"}) + "\n")
    n = len(judgments_path.read_text().splitlines())
    with pytest.raises(InputError, match=rf"judgments\.jsonl, line {n}: field 'pair_id': no pair 'nope'"):
        stream_filter(pairs_path, judgments_path, Filter(), JudgePrompt(), tmp_path / "t.jsonl",
                      tmp_path / "p.jsonl")
    assert not (tmp_path / "t.jsonl").exists() and not (tmp_path / "p.jsonl").exists()
