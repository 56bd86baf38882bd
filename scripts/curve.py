"""The per-iteration table and accuracy plot of one or more runs of the loop (experiments, commits, or the
workspace), from the metrics and reports each run committed.

    python scripts/curve.py --run sft=five-sft --run dpo=five-dpo --png docs/five_iterations.png \
        --reference likelihood=0.625 --log sft=five.log

`--run LABEL=REV`: a git revision or experiment name (`dvc exp show` lists them; "workspace" for the files on
disk). For every iteration k of a run it prints accuracy ± SE per generative mode (the mean over benchmarks,
as metrics/iter_<k>.json), the accuracy pooled over all pairs, per-benchmark accuracy, parse rate, position
consistency and A share, and from iteration 1 on the judgments kept by the filter and the SFT/DPO steps, and
the change from iteration 0 on the same pairs with its paired standard error (read from the run's
work/eval/iter_<k>.jsonl in the DVC cache; "–" where the cache lacks them).
`--log LABEL=FILE`: a timestamped `dvc exp run` log (each line prefixed with HH:MM:SS) gives the wall time of
each stage. The PNG (needs matplotlib: `pip install -e '.[plot]'`) draws accuracy per iteration, one line
per run and mode, with the seed's level in each mode (iteration 0, and any `--reference MODE=VALUE`, e.g. a
likelihood accuracy measured outside the run) as dashed reference lines; `--measured MODE=K:FILE` adds the
accuracy ± SE of a `selftaught judge --metrics FILE` run of iteration K's judge (e.g. the likelihood mode,
left out of a DAG to save time) as points of that mode, and a reference line when K is 0."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta

MODES = ("free", "constrained")
BENCHMARKS = {"evalbiasbench": "EBB", "hhh_alignment": "HHH", "llmbar": "LLMBar"}


def read_text(path: str, rev: str) -> str | None:
    import dvc.api

    try:
        return dvc.api.read(path, rev=None if rev == "workspace" else rev)
    except Exception:                   # a file the run does not have (no such iteration, not in this cache)
        return None


def read_json(path: str, rev: str):
    text = read_text(path, rev)
    return None if text is None else json.loads(text)


def load_run(rev: str, only=None) -> list[dict]:
    """[{iteration, metrics, report, filter, train}] for k = 0, 1, ... while metrics/iter_<k>.json exists
    (with `only`, those iterations alone: an experiment that ran part of the DAG keeps the others' old
    files)."""
    out = []
    for k in sorted(only) if only is not None else range(1000):
        metrics = read_json(f"metrics/iter_{k}.json", rev)
        if metrics is None:
            if only is not None:
                continue
            break
        out.append({"iteration": k, "metrics": metrics,
                    "report": read_json(f"reports/eval_{k}.json", rev) or {},
                    "filter": read_json(f"metrics/filter_{k}.json", rev) if k else None,
                    "train": read_json(f"metrics/train_{k}.json", rev) if k else None})
    if not out:
        sys.exit(f"error: {rev}: no metrics/iter_<k>.json of the iterations asked for in this revision")
    return out


def read_jsonl(path: str, rev: str, schema) -> list | None:
    text = read_text(path, rev)
    if text is None:
        return None
    return [schema.from_dict(json.loads(line), path, i) for i, line in enumerate(text.splitlines(), 1)
            if line.strip()]


def changes_from_seed(rev: str, run: list[dict]) -> dict[int, dict[str, tuple[float, float]]]:
    """{k: {mode: (accuracy(k) - accuracy(0), paired SE)}} for the iterations after 0."""
    from selftaught.core.schemas import Judgment, Pair
    from selftaught.evaluation import paired_difference

    if not run or run[0]["iteration"] != 0:
        return {}
    pairs = read_jsonl("work/data/benchmarks.jsonl", rev, Pair)
    seed = read_jsonl("work/eval/iter_0.jsonl", rev, Judgment)
    out = {}
    for it in run[1:]:
        js = read_jsonl(f"work/eval/iter_{it['iteration']}.jsonl", rev, Judgment) if pairs and seed else None
        if js:
            out[it["iteration"]] = {mode: paired_difference([j for j in seed if j.mode == mode],
                                                            [j for j in js if j.mode == mode], pairs)
                                    for mode in MODES if mode in it["metrics"]}
    return out


def pooled(mode_report: dict) -> float | None:
    """Accuracy over all pairs (each benchmark weighted by its pair count)."""
    b = mode_report.get("benchmarks") or {}
    n = sum(v.get("pairs", 0) for v in b.values())
    return sum(v["accuracy"] * v["pairs"] for v in b.values()) / n if n else None


def stage_times(log_path: str) -> dict[str, int]:
    """{stage: seconds} from a log whose lines start with HH:MM:SS: from a stage's "Running stage" line to the
    next one (or to the end of the log)."""
    marks = []
    for line in open(log_path, encoding="utf-8"):
        m = re.match(r"(\d\d:\d\d:\d\d) (?:Running stage '([^']+)'|.*Ran experiment)", line)
        if m:
            marks.append((datetime.strptime(m.group(1), "%H:%M:%S"), m.group(2)))
    out = {}
    for (t0, name), (t1, _) in zip(marks, marks[1:]):
        if name:
            out[name] = int(((t1 - t0) % timedelta(days=1)).total_seconds())
    return out


def table(label: str, run: list[dict], times: dict[str, int], changes=None) -> str:
    head = ("| run | k | mode | accuracy ± SE (mean of benchmarks) | change from k=0 ± paired SE | pooled | "
            "EBB / HHH / LLMBar | parse | pc | A share | kept | steps | "
            "wall s (synthesize, judge, train, evaluate) |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for it in run:
        k, m, modes = it["iteration"], it["metrics"], it["report"].get("modes", {})
        kept = it["filter"]["kept"] if it["filter"] else "–"
        if it["train"] and it["train"].get("objective") == "dpo":
            kept = str(it["filter"]["preference_pairs"]) + " pairs"
        steps = it["train"]["steps"] if it["train"] else "–"
        wall = ", ".join(str(times.get(f"{s}@{k}", "–")) for s in ("synthesize", "judge", "train")) + \
            f", {times.get(f'evaluate@{k}', times.get('evaluate_seed@0', '–') if k == 0 else '–')}"
        for mode in MODES:
            if mode not in m:
                continue
            h, r = m[mode], modes.get(mode, {})
            pool = pooled(r)
            per = " / ".join(f"{h.get(b, float('nan')):.3f}" for b in BENCHMARKS)
            d = (changes or {}).get(k, {}).get(mode)
            change = f"{d[0]:+.3f} ± {d[1]:.3f}" if d else "–"
            rows.append(f"| {label} | {k} | {mode} | {h['accuracy']:.3f} ± {h['accuracy_stderr']:.3f} | "
                        f"{change} | {'–' if pool is None else f'{pool:.3f}'} | {per} | "
                        f"{h['parse_rate']:.3f} | {h['position_consistency']:.3f} | "
                        f"{r.get('a_share', float('nan')):.2f} | {kept} | {steps} | {wall} |")
    return "\n".join(rows)


def measured_points(values: list[str]) -> dict[str, list[tuple[int, float, float]]]:
    """--measured MODE=K:FILE -> {mode: [(k, accuracy, stderr)]} from `selftaught judge --metrics` files."""
    out: dict[str, list] = {}
    for mode, spec in _items(values, "--measured"):
        k, _, path = spec.partition(":")
        if not k.isdigit() or not path:
            sys.exit(f"error: --measured {mode}={spec}: expected MODE=K:FILE")
        m = json.load(open(path, encoding="utf-8"))
        out.setdefault(mode, []).append((int(k), m["accuracy"], m["accuracy_stderr"]))
    return out


def plot(runs: dict[str, list[dict]], references: dict[str, float], out: str, measured=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"free": "tab:blue", "constrained": "tab:orange", "likelihood": "tab:green"}
    styles = ["-o", "--s", ":^"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    first = next(iter(runs.values()))
    levels = {mode: first[0]["metrics"][mode]["accuracy"] for mode in MODES
              if first[0]["iteration"] == 0 and mode in first[0]["metrics"]}
    levels.update({mode: a for mode, pts in (measured or {}).items() for k, a, _ in pts if k == 0})
    levels.update(references)
    for mode, y in levels.items():
        ax.axhline(y, color=colors.get(mode, "grey"), linestyle=(0, (2, 3)), linewidth=1,
                   label=f"seed, {mode}: {y:.3f}")
    for (label, run), style in zip(runs.items(), styles):
        for mode in MODES:
            pts = [(it["iteration"], it["metrics"][mode]) for it in run if mode in it["metrics"]]
            ax.errorbar([k for k, _ in pts], [h["accuracy"] for _, h in pts],
                        yerr=[h["accuracy_stderr"] for _, h in pts], fmt=style, color=colors[mode], capsize=2,
                        markersize=4, linewidth=1.2, label=f"{label}, {mode}")
    for mode, pts in (measured or {}).items():
        pts = sorted(pts)
        ax.errorbar([k for k, _, _ in pts], [a for _, a, _ in pts], yerr=[e for _, _, e in pts], fmt="D",
                    color=colors.get(mode, "grey"), capsize=2, markersize=4,
                    label=f"{mode} (selftaught judge)")
    ax.axhline(0.5, color="black", linewidth=0.6)
    ax.set_xlabel("iteration (0 = seed)")
    ax.set_ylabel("accuracy (mean of 3 benchmarks)")
    ax.set_xticks(range(max(len(r) for r in runs.values())))
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    print(f"wrote {out}")


def _items(values, what) -> list[tuple[str, str]]:
    out = []
    for v in values:
        if "=" not in v:
            sys.exit(f"error: {what} {v!r}: expected LABEL=VALUE")
        out.append(tuple(v.split("=", 1)))
    return out


def pairs(values, what) -> dict[str, str]:
    return dict(_items(values, what))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=REV")
    ap.add_argument("--log", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--reference", action="append", default=[], metavar="MODE=ACCURACY")
    ap.add_argument("--iterations", action="append", default=[], metavar="LABEL=K,K",
                    help="only these iterations of a run (e.g. dpo=1 for an experiment that ran "
                         "evaluate@1)")
    ap.add_argument("--measured", action="append", default=[], metavar="MODE=K:FILE",
                    help="a `selftaught judge --metrics` file of iteration K's judge, "
                         "drawn as a point of MODE")
    ap.add_argument("--png", help="write the accuracy plot here")
    args = ap.parse_args(argv)
    only = {label: {int(k) for k in v.split(",")}
            for label, v in pairs(args.iterations, "--iterations").items()}
    revs = pairs(args.run, "--run")
    runs = {label: load_run(rev, only.get(label)) for label, rev in revs.items()}
    logs = pairs(args.log, "--log")
    for label, run in runs.items():
        print(table(label, run, stage_times(logs[label]) if label in logs else {},
                    changes_from_seed(revs[label], run)))
        print()
    if args.png:
        plot(runs, {k: float(v) for k, v in pairs(args.reference, "--reference").items()}, args.png,
             measured_points(args.measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
