"""The whole DAG at scale without a GPU (not a test): the stand-in profile (configs/profiles/standin.yaml:
generation.backend synthetic, a tiny seed trained train.max_steps steps) in a temporary copy of this
repository, with generated pools and benchmarks (tests/support/scale.py) at 1x, 10x, 100x params.yaml's sizes
(`--sizes`) or at a fraction of the paper's (`--paper F`: configs/profiles/paper.yaml's recipe, 20,582
instructions x F re-judged in 5 iterations, N = 15 adaptive samples per pair and order, RewardBench's 2,985
pairs x F with 32-sample votes).

Per stage it records the wall time and peak RSS of the stage's process (GNU time wraps each stage's command in
the copy's dvc.yaml: `%e`, `%M`, the largest resident set of the process tree) and the size of its outputs
(dvc.lock); then DVC's own times with everything up to date: `dvc repro` (a no-op), `dvc status`, `dvc exp
show` (median of 3 each) and a first `dvc push` to a local remote. With `--against REV` it also runs, on
iteration 1's inputs, the filter stage of revision REV (a copy of its stages/ and src/) and REV's way of
building the training set, beside this checkout's: peak RSS, and whether the filter's outputs are the same
bytes. It prints markdown tables and, with `--out docs/scaling.md`, rewrites the block between the markers
there.

    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/scale.py --sizes 1,10,100 [--out docs/scaling.md]
    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/scale.py --paper 0.25 [--against REV] [--out ...]
    PYTHONPATH=tests .venv/bin/python benchmarks/scale.py --make-seed downloads/tiny_model   # the seed
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from support.repo import ROOT, run  # tests/support: run with PYTHONPATH=tests
from support.scale import build, make_seed, pool, sizes

TIME = "/usr/bin/time"
BEGIN, END = "<!-- benchmarks/scale.py: {}: begin -->", "<!-- benchmarks/scale.py: {}: end -->"


def wrap_commands(repo: Path, log: Path) -> None:
    """Every stage's command under GNU time, appending `seconds maxrss-KB command` to `log`."""
    dvc_yaml = repo / "dvc.yaml"
    text = dvc_yaml.read_text()
    wrapped = text.replace("python stages/", f"{TIME} -f '%e %M %C' -a -o {log} python stages/")
    assert wrapped.count(TIME) == text.count("python stages/") >= 10
    dvc_yaml.write_text(wrapped)
    run("git add -A && git commit -qm 'stages timed'", repo)


def stage_name(cmd: str) -> str:
    script = re.search(r"stages/(\w+)\.py", cmd).group(1)
    it = re.search(r"--iteration (\d+)", cmd)
    if it is None:
        return script
    return "evaluate_seed@0" if script == "evaluate" and it.group(1) == "0" else f"{script}@{it.group(1)}"


def timed(cmd, cwd, check_noop=False) -> float:
    t = time.perf_counter()
    out = run(cmd, cwd).stdout
    elapsed = time.perf_counter() - t
    if check_noop:
        assert "Running stage" not in out, out
    return elapsed


def out_sizes(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: sum(o.get("size", 0) for o in st.get("outs", [])) for name, st in lock["stages"].items()}


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# Builds the training set of a records file as the checkout on PYTHONPATH does (`encoded_dataset`, or before
# it existed a list of encoded examples and Dataset.from_list) and prints the process's peak RSS (VmHWM, kB).
BUILD = """
import pathlib, sys, tempfile
import datasets
from transformers import AutoTokenizer
from selftaught import training
from selftaught.core.config import Train
datasets.disable_progress_bars()
path, tok, p = sys.argv[1], AutoTokenizer.from_pretrained(sys.argv[2]), Train(max_length=4096)
with tempfile.TemporaryDirectory() as folder:
    if hasattr(training, "encoded_dataset"):
        ds, n = training.encoded_dataset(path, tok, p, folder)
    else:
        from selftaught.core.io import read_jsonl
        fits = [e for e in map(lambda r: training.encode(tok, r), read_jsonl(path))
                if training.n_tokens(e) <= p.max_length]
        ds = datasets.Dataset.from_list(fits)
status = pathlib.Path("/proc/self/status").read_text().splitlines()
print("VmHWM", [x for x in status if x.startswith("VmHWM")][0].split()[1], len(ds))
"""


def against(rev: str, repo: Path, base: Path) -> dict:
    """Iteration 1's filter and training-set build by revision `rev` and by this checkout: peak RSS (MB)."""
    old = base / f"rev-{rev}"
    if not old.exists():
        old.mkdir()
        run(f"git archive {rev} src stages | tar -x -C {old}", ROOT)
    # the run's params as that revision's params.yaml has them: its keys only, and a backend it knows (the
    # filter does not read it)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    known = yaml.safe_load(run(f"git show {rev}:params.yaml", ROOT).stdout)
    for section, values in params.items():
        if isinstance(values, dict) and isinstance(known.get(section), dict) and section != "iterations":
            params[section] = {k: v for k, v in values.items() if k in known[section]}
    params["generation"]["backend"] = known["generation"]["backend"]
    (base / "old_params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    w, out = repo / "work/iter_1", {}
    for who, stages, extra in [(rev, old / "stages", ["--params", str(base / "old_params.yaml")]),
                               ("this checkout", repo / "stages", [])]:
        log = base / "against.log"
        log.unlink(missing_ok=True)
        run([TIME, "-f", "%M", "-o", str(log), sys.executable, str(stages / "filter.py"), "--iteration", "1",
             "--pairs", str(w / "pairs.jsonl"), "--judgments", str(w / "judgments.jsonl"),
             "--out", str(base / "f_train.jsonl"), "--preferences", str(base / "f_prefs.jsonl"),
             "--metrics", str(base / "f_metrics.json"), *extra], repo)
        same = all((base / f"f_{a}.jsonl").read_bytes() == (w / f"{b}.jsonl").read_bytes()
                   for a, b in (("train", "train"), ("prefs", "preferences")))
        src = old / "src" if who == rev else ROOT / "src"
        records, seed = w / "train.jsonl", repo / "models/iter_0"
        build = run(f"PYTHONPATH={src} {sys.executable} -c '{BUILD}' {records} {seed}", repo).stdout.split()
        out[who] = {"filter_mb": int(log.read_text().split()[-1]) / 1024, "same_bytes": same,
                    "build_mb": int(build[1]) / 1024, "examples": int(build[2])}
    out["inputs_mb"] = sum((w / f).stat().st_size for f in ("pairs.jsonl", "judgments.jsonl")) / 2**20
    out["records_mb"] = (w / "train.jsonl").stat().st_size / 2**20
    return out


def check_marked(repo: Path) -> None:
    """Every metrics file, report and trained judge's model card of the run names the stand-in."""
    from selftaught.core.metrics import SYNTHETIC

    files = [*repo.glob("metrics/*.json"), *repo.glob("reports/*.json"), *repo.glob("dvclive/*/metrics.json"),
             repo / "reports/summary.md", *(d / "README.md" for d in repo.glob("models/iter_*")
                                            if d.name != "iter_0")]
    unmarked = [str(f.relative_to(repo)) for f in files if SYNTHETIC not in f.read_text()]
    if unmarked:
        raise SystemExit(f"not marked as a stand-in run: {unmarked}")


def measure(label: str, size: dict, base: Path, seed_dir: Path | None, rev: str | None = None) -> dict:
    repo = build(base / "repo", size, seed_dir)
    log = base / "times.log"
    wrap_commands(repo, log)
    t = time.perf_counter()
    p = run("dvc repro", repo, check=False)
    total = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{label}: dvc repro failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    check_marked(repo)
    stages = {}
    for line in log.read_text().splitlines():
        secs, kb, cmd = line.split(" ", 2)
        stages[stage_name(cmd)] = {"seconds": float(secs), "rss_mb": int(kb) / 1024}
    sizes_ = out_sizes(repo)
    for name, st in stages.items():
        st["out_mb"] = sizes_.get(name, 0) / 2**20
    run("dvc remote add -d scale ../remote", repo)
    dvc = {what: statistics.median(timed(cmd, repo, check_noop=what == "dvc repro (no-op)") for _ in range(3))
           for what, cmd in [("dvc repro (no-op)", "dvc repro"), ("dvc status", "dvc status"),
                             ("dvc exp show", "dvc exp show --no-pager --md")]}
    dvc["dvc push (first, local remote)"] = timed("dvc push", repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    work = repo / "work"
    counts = {"instructions per iteration": params["data"]["per_iteration"],
              "iterations": len(params["iterations"]),
              "pairs judged (iteration 1)": sum(1 for _ in open(work / "iter_1/pairs.jsonl")),
              "judgments (iteration 1)": sum(1 for _ in open(work / "iter_1/judgments.jsonl")),
              "training records (iteration 1)": sum(1 for _ in open(work / "iter_1/train.jsonl")),
              "evaluation pairs": sum(1 for _ in open(work / "data/benchmarks.jsonl")),
              "evaluation judgments (iteration 1)": sum(1 for _ in open(work / "eval/iter_1.jsonl"))}
    return {"label": label, "stages": stages, "dvc": dvc, "repro_s": total, "counts": counts,
            "cache_mb": tree_bytes(repo / ".dvc/cache") / 2**20,
            "against": against(rev, repo, base) if rev else None}


LOOP = ("synthesize", "judge", "filter", "train", "evaluate")


def _order(names) -> list:
    """The stages as they run: the setup, then each iteration's loop, then summary."""
    first = [n for n in ("check_params", "seed", "generator", "categorize", "data", "evaluate_seed@0")
             if n in names]
    loop = sorted((n for n in names if "@" in n and n not in first),
                  key=lambda n: (int(n.split("@")[1]), LOOP.index(n.split("@")[0])))
    return first + loop + [n for n in names if n not in first and n not in loop]


def stage_table(r: dict) -> str:
    rows = ["| stage | wall s | peak RSS MB | outputs MB |", "|---|---|---|---|"]
    for n in _order(r["stages"]):
        s = r["stages"][n]
        rows.append(f"| {n} | {s['seconds']:.1f} | {s['rss_mb']:.0f} | {s['out_mb']:.2f} |")
    tot = sum(s["seconds"] for s in r["stages"].values())
    peak = max(s["rss_mb"] for s in r["stages"].values())
    rows.append(f"| **all stages** | {tot:.1f} | {peak:.0f} (max) | "
                f"{sum(s['out_mb'] for s in r['stages'].values()):.1f} |")
    return "\n".join(rows)


def growth_table(results: list) -> str:
    labels = [r["label"] for r in results]
    cols = [f"{what} {x}" for what in ("s", "MB RSS", "MB out") for x in labels]
    head = "| stage | " + " | ".join(cols) + " |"
    rows = [head, "|" + "---|" * (1 + 3 * len(labels))]
    for n in _order(results[-1]["stages"]):
        st = [r["stages"].get(n, {}) for r in results]
        cell = lambda key, fmt: " | ".join(fmt.format(s[key]) if s else "-" for s in st)  # noqa: E731
        rows.append(f"| {n} | {cell('seconds', '{:.1f}')} | {cell('rss_mb', '{:.0f}')} | "
                    f"{cell('out_mb', '{:.2f}')} |")
    return "\n".join(rows)


def _runs_table(results: list, rows: list) -> str:
    """A table with a column per run: `rows` are (name, one cell per run)."""
    lines = ["| | " + " | ".join(r["label"] for r in results) + " |", "|---|" + "---|" * len(results)]
    return "\n".join(lines + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows])


def dvc_table(results: list) -> str:
    rows = [(what, [f"{r['dvc'][what]:.1f} s" for r in results]) for what in results[0]["dvc"]]
    rows += [("`dvc repro` (the whole DAG)", [f"{r['repro_s']:.0f} s" for r in results]),
             (".dvc/cache", [f"{r['cache_mb']:.0f} MB" for r in results])]
    return _runs_table(results, rows)


def counts_table(results: list) -> str:
    return _runs_table(results, [(what, [f"{r['counts'][what]:,}" for r in results])
                                 for what in results[0]["counts"]])


def against_table(results: list, rev: str) -> str:
    rows = [f"| iteration 1 | filter inputs | filter peak RSS, {rev} | this checkout | same bytes | training "
            f"records | build peak RSS, {rev} | this checkout |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        a = r["against"]
        old, new = a[rev], a["this checkout"]
        same = "yes" if old["same_bytes"] and new["same_bytes"] else "NO"
        rows.append(f"| {r['label']} | {a['inputs_mb']:.1f} MB | {old['filter_mb']:.0f} MB | "
                    f"{new['filter_mb']:.0f} MB | {same} | "
                    f"{new['examples']:,} ({a['records_mb']:.1f} MB) | {old['build_mb']:.0f} MB | "
                    f"{new['build_mb']:.0f} MB |")
    return "\n".join(rows)


def report(results: list, command: str, rev: str | None = None) -> str:
    commit = run("git rev-parse --short HEAD", ROOT).stdout.strip()
    dirty = run("git status --porcelain", ROOT).stdout.strip()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = open("/proc/loadavg").read().split()[0]
    state = f"commit {commit}" + (" + uncommitted changes" if dirty else "")
    parts = [f"Written by `benchmarks/scale.py` ({when}, {state}; 1-minute load {load} at the end). Command: "
             f"`{command}`.", "", counts_table(results), ""]
    if len(results) == 1:
        parts += [stage_table(results[0]), ""]
    else:
        parts += [growth_table(results), ""]
    parts += ["DVC with everything up to date (median of 3; the push once, to an empty local remote):", "",
              dvc_table(results)]
    if rev:
        parts += ["", f"The filter stage and the training set's build of {rev} against this checkout's, on "
                      "the same inputs (peak RSS of each process; the build loads the tokenizer first):", "",
                  against_table(results, rev)]
    return "\n".join(parts)


def refresh(doc: Path, block: str, body: str) -> None:
    text = doc.read_text()
    begin, end = BEGIN.format(block), END.format(block)
    if begin not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    doc.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10,100", help="multipliers of params.yaml's sizes")
    ap.add_argument("--paper", type=float, help="instead: the paper's recipe at this fraction of its sizes")
    ap.add_argument("--out", type=Path, help="rewrite the block between this file's markers")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    ap.add_argument("--make-seed", type=Path, help="only write the stand-in profile's tiny seed there")
    ap.add_argument("--against", metavar="REV", help="also run REV's filter and training-set build")
    args = ap.parse_args()
    if args.make_seed:
        make_seed(args.make_seed, [r["instruction"] for r in pool(2000)])
        print(f"wrote {args.make_seed}")
        return
    runs = ([(f"{args.paper:g} x paper", sizes(paper=args.paper))] if args.paper
            else [(f"{m}x", sizes(int(m))) for m in args.sizes.split(",")])
    results, base = [], Path(tempfile.mkdtemp(prefix="selftaught-scale-"))
    seed_dir = None
    try:
        for label, size in runs:
            work = base / label.replace(" ", "_")
            if seed_dir is None:        # one seed for every size: its tokenizer from the first size's texts
                texts = [r.get("instruction", "") + " " + r.get("chosen", "")
                         for recs in size["files"].values() for r in recs[:300]]
                seed_dir = make_seed(base / "seed", texts)
            print(f"== {label}", file=sys.stderr, flush=True)
            r = measure(label, size, work, seed_dir, args.against)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(work / "repo", ignore_errors=True)
                shutil.rmtree(work / "remote", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}", file=sys.stderr)
    command = "PYTHONPATH=tests python benchmarks/scale.py " + (f"--paper {args.paper:g}" if args.paper
                                                                 else f"--sizes {args.sizes}")
    command += f" --against {args.against}" if args.against else ""
    body = report(results, command, args.against)
    print(body)
    if args.out:
        refresh(args.out, "paper" if args.paper else "sizes", body)


if __name__ == "__main__":
    main()
