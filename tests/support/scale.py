"""The pipeline's inputs at any size, for benchmarks/scale.py and tests/e2e/test_scale_memory.py: generated
instruction pools and labelled benchmark pairs (no two near-duplicates, lengths of real ones), the params of a
size (a multiple of params.yaml's sizes, or the paper's at a fraction) on top of the stand-in profile
(configs/profiles/standin.yaml), a tiny seed whose tokenizer was trained on such texts (~4 characters a
token), and a git + DVC repository holding all of it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from support.repo import ROOT, make_repo, run
from support.tiny_model import make_tiny_model

PROFILE = ROOT / "configs/profiles/standin.yaml"
PAPER_PROFILE = ROOT / "configs/profiles/paper.yaml"
SECTIONS = "data/benchmarks/rewardbench_sections.yaml"

# The paper's sizes: the WildChat reasoning instructions of each iteration (paper §4.1, data.per_iteration in
# configs/profiles/paper.yaml) and RewardBench's 2,985 pairs.
PAPER_INSTRUCTIONS = 20582
PAPER_PAIRS = 2985
# What params.yaml's sizes are multiplied by: instructions per iteration, and pairs of each of 3 benchmarks.
BASE = {"per_iteration": 48, "eval_per_benchmark": 40, "benchmarks": 3}

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
_OPENERS = ["Write", "Explain", "Describe", "List", "Compare", "Summarize", "Suggest", "How", "Why", "What"]


def _words(n_vocab=6000, seed=0) -> list:
    rng = random.Random(seed)
    out = set()
    while len(out) < n_vocab:
        out.add("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))))
    return sorted(out)


WORDS = _words()


def text(rng, lo, hi) -> str:
    """lo to hi words in sentences."""
    words = rng.choices(WORDS, k=rng.randint(lo, hi))
    out = []
    for i in range(0, len(words), 12):
        s = words[i:i + 12]
        out.append(s[0].capitalize() + " " + " ".join(s[1:]) + ".")
    return " ".join(out)


def pool(n: int, seed=0, lo=8, hi=60) -> list:
    rng = random.Random(f"pool:{seed}")
    return [{"id": f"scale-{i}", "instruction": f"{rng.choice(_OPENERS)} {text(rng, lo, hi)}"}
            for i in range(n)]


def benchmark(name: str, subsets: dict, seed=0) -> list:
    """Labelled pairs, `subsets[s]` of subset s: an instruction and two responses of 40-300 words."""
    rng = random.Random(f"bench:{name}:{seed}")
    out = []
    for sub, n in subsets.items():
        for i in range(n):
            out.append({"id": f"{name}-{sub}-{i}", "subset": sub, "source": "generated",
                        "instruction": f"{rng.choice(_OPENERS)} {text(rng, 8, 60)}",
                        "chosen": text(rng, 40, 300), "rejected": text(rng, 40, 300)})
    return out


def paper_subsets(fraction: float) -> dict:
    """RewardBench's subsets (the section map's), `fraction` of its PAPER_PAIRS pairs spread over them as the
    map's example counts are."""
    sections = yaml.safe_load((ROOT / SECTIONS).read_text())
    counts = {s: n for subs in sections.values() for s, n in subs.items()}
    scale = PAPER_PAIRS * fraction / sum(counts.values())
    return {s: max(1, round(n * scale)) for s, n in counts.items()}


def sizes(multiplier: int = 1, paper: float | None = None) -> dict:
    """Dotted params overrides (beyond the stand-in profile) and the data files they name: {"params": ...,
    "files": {path: records}}. `multiplier`: params.yaml's data sizes times it; `paper`: the paper's recipe
    (configs/profiles/paper.yaml) at that fraction of its sizes, with what runs on this machine in place of
    GPUs (the stand-in backend, fp32 training in one process, the last checkpoint)."""
    files = {}
    if paper is None:
        per, n_eval = BASE["per_iteration"] * multiplier, BASE["eval_per_benchmark"] * multiplier
        files["data/instructions/scale.jsonl"] = pool(round(2 * per * 1.05) + 10)
        names = [f"data/benchmarks/scale_{b}.jsonl" for b in range(1, BASE["benchmarks"] + 1)]
        for b, f in enumerate(names):
            files[f] = benchmark(f"b{b}", {"s1": n_eval // 2, "s2": n_eval - n_eval // 2}, seed=b)
        params = {"data.per_iteration": per, "data.eval_per_benchmark": n_eval,
                  "data.instructions": ["data/instructions/scale.jsonl"], "data.benchmarks": names}
        return {"params": params, "files": files}
    per = round(PAPER_INSTRUCTIONS * paper)
    files["data/instructions/scale.jsonl"] = pool(round(per * 1.02) + 10, lo=20, hi=200)
    files["data/benchmarks/rewardbench.jsonl"] = benchmark("rb", paper_subsets(paper))
    params = dict(yaml.safe_load(PAPER_PROFILE.read_text()))
    params.update({
        "data.per_iteration": per, "data.instructions": ["data/instructions/scale.jsonl"],
        "data.benchmarks": ["data/benchmarks/rewardbench.jsonl"], "data.eval_per_benchmark": 0,
        "data.validation": [], "train.select": "last", "train.precision": "fp32",
        "train.accelerate_config": "", "generation.device": "cpu", "generation.tensor_parallel_size": 1,
        "evaluate.likelihood_dtype": "float32"})
    return {"params": params, "files": files}


def make_seed(out_dir, texts=()) -> Path:
    """The tiny random model with a 4096-token tokenizer trained on the stand-in's texts and `texts`."""
    from selftaught.backends.synthetic import _corpus

    corpus = [_corpus(1)[i:i + 2000] for i in range(0, 400_000, 2000)] + list(texts)
    return make_tiny_model(out_dir, corpus=corpus, vocab_size=4096)


def build(dest: Path, size: dict, seed_dir: Path | None = None) -> Path:
    """A git + DVC repository in `dest` (this checkout's files) with the stand-in profile, `size`'s params
    and data files, and the tiny seed (made in dest/../seed unless given), committed."""
    from selftaught.profile import apply

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if seed_dir is None:
        sample = [r.get("instruction", "") + " " + r.get("chosen", "")
                  for recs in size["files"].values() for r in recs[:300]]
        seed_dir = make_seed(dest.parent / "seed", sample)
    make_repo(dest, seed_dir, {})
    for path, records in size["files"].items():
        (dest / path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    raw = yaml.safe_load((dest / "params.yaml").read_text())
    # the stand-in profile last: its backend, seed and step cap hold over a recipe's (the paper's vLLM)
    overrides = {**size["params"], **yaml.safe_load(PROFILE.read_text()), "seed.path": str(seed_dir)}
    raw = apply(raw, overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run("git add -A && git commit -qm scale", dest)
    return dest
