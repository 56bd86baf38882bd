"""Tables of evaluation metrics: rich on the terminal (at most 80 columns, one statistic per row), pandas
for CSV/markdown, `dvc plots` for curves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from .core.errors import InputError
from .core.io import atomic_path, write_json, write_text
from .core.metrics import HEADLINE, SYNTHETIC, marked

PLOTTED = ("accuracy", "parse_rate", "position_consistency")


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def print_stats(title: str, stats: dict, console: Console | None = None) -> None:
    """A flat dict as a two-column table (one statistic per row)."""
    t = Table(title=title)
    t.add_column("statistic")
    t.add_column("value", justify="right")
    for k, v in stats.items():
        if not isinstance(v, (dict, list)):
            t.add_row(k.replace("_", " "), _fmt(v))
    (console or Console(stderr=True)).print(t)


def print_eval(iteration, by_mode: dict, console: Console | None = None) -> None:
    """Per mode: one row per benchmark, four statistics (fits 80 columns)."""
    console = console or Console(stderr=True)
    for mode, m in by_mode.items():
        t = Table(title=f"iteration {iteration}, {mode} verdicts")
        for c in ("benchmark", "pairs", "accuracy ± se", "parsed", "consistent", "A share"):
            t.add_column(c, justify="left" if c == "benchmark" else "right")
        for b, bm in {**m["benchmarks"], "mean": m}.items():
            t.add_row(b, str(bm.get("pairs", "")), f"{bm['accuracy']:.3f} ± {bm['accuracy_stderr']:.3f}",
                      f"{bm['parse_rate']:.3f}", f"{bm['position_consistency']:.3f}", f"{bm['a_share']:.3f}")
        console.print(t)


def long_table(metric_files, modes_required=True) -> pd.DataFrame:
    """One row per (iteration, mode, statistic) from metrics/iter_<k>.json headline files. A file that is not
    a mapping with an integer `iteration`, or (`modes_required`: test metrics; a validation file without a
    split holds `iteration` alone) one with no verdict mode, is an InputError: never an iteration left out."""
    rows = []
    for f in metric_files:
        try:
            m = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            why = getattr(e, "strerror", None) or e
            raise InputError(f, f"cannot read evaluation metrics ({why})") from None
        if not isinstance(m, dict) or isinstance(m.get("iteration"), bool) or not isinstance(
                m.get("iteration"), int):
            raise InputError(f, "not evaluation metrics: expected a mapping with an integer `iteration`",
                             field="iteration")
        if modes_required and not any(isinstance(v, dict) for v in m.values()):
            raise InputError(f, "holds no verdict mode's metrics ({mode: {accuracy, ...}} beside "
                                "`iteration`): rerun the evaluate stage of that iteration")
        for mode, stats in m.items():
            if isinstance(stats, dict):
                rows += [{"iteration": m["iteration"], "mode": mode, "statistic": s, "value": v}
                         for s, v in stats.items()]
    return pd.DataFrame(rows, columns=["iteration", "mode", "statistic", "value"])


NO_BEST = {"iteration": None, "mode": None, "validation_accuracy": None, "test_accuracy": None}


def best_iteration(test: pd.DataFrame, validation: pd.DataFrame) -> dict:
    """The (iteration, mode) with the highest validation accuracy, ties to the earlier iteration, then to the
    mode first in alphabetical order; its test accuracy is only reported, never used to choose. NO_BEST
    without validation."""
    val = validation[validation["statistic"] == "accuracy"]
    if val.empty:
        return dict(NO_BEST)
    best = min(val.itertuples(index=False), key=lambda r: (-r.value, r.iteration, r.mode))
    hit = test[(test["iteration"] == best.iteration) & (test["mode"] == best.mode)
               & (test["statistic"] == "accuracy")]
    return {"iteration": int(best.iteration), "mode": best.mode, "validation_accuracy": float(best.value),
            "test_accuracy": float(hit["value"].iloc[0]) if len(hit) else None}


def validation_markdown(validation: pd.DataFrame, best: dict) -> list:
    """summary.md's validation section: the pick, then the validation accuracy per mode and iteration."""
    acc = validation[validation["statistic"] == "accuracy"]
    table = acc.pivot_table(index="mode", columns="iteration", values="value", sort=False).reset_index()
    table.columns = [f"iter {c}" if isinstance(c, int) else c for c in table.columns]
    return ["## Best iteration (chosen on the validation split, never on test)", "",
            f"Iteration {best['iteration']}, {best['mode']} verdicts: validation accuracy "
            f"{best['validation_accuracy']:.3f}, test accuracy {_fmt(best['test_accuracy'])} "
            "(reports/best.json). Ties go to the earlier iteration, then to the mode first in "
            "alphabetical order. Validation accuracy:", "",
            table.to_markdown(index=False, floatfmt=".3f"), ""]


def write_report(metric_files, out_dir="reports", validation_files=()) -> pd.DataFrame:
    """summary.md/.csv (every statistic, iterations as columns) and one CSV per plotted statistic
    (iterations as rows, one column per verdict mode: one line per mode in `dvc plots show`). With
    `validation_files` (metrics/val_<k>.json), also best.json: the iteration chosen on validation accuracy,
    and its section in summary.md when there is a validation split."""
    df = long_table(metric_files)
    out_dir = Path(out_dir)
    wide = df.pivot_table(index=["mode", "statistic"], columns="iteration", values="value",
                          sort=False).reset_index()
    order = {s: i for i, s in enumerate(HEADLINE)}
    wide = wide.sort_values(["mode", "statistic"], key=lambda c: c.map(order).fillna(len(order)) if c.name ==
                            "statistic" else c, kind="stable").reset_index(drop=True)
    wide.columns = [f"iter {c}" if isinstance(c, int) else c for c in wide.columns]
    for stat in PLOTTED:
        plot = df[df["statistic"] == stat].pivot(index="iteration", columns="mode",
                                                 values="value").reset_index()
        with atomic_path(out_dir / f"{stat}.csv") as tmp:
            plot.to_csv(tmp, index=False, float_format="%.4f")
    mark = marked(metric_files)
    md = ["# Judge per iteration", ""]
    if mark:
        md += [f"**Generator: {SYNTHETIC}.** These figures measure the pipeline, not a judge.", ""]
    md += ["Accuracy counts both orders of every pair, an unparseable verdict as half right; the standard "
           "error is over pairs. Per-subset figures: reports/eval_<k>.json.", "",
           wide.to_markdown(index=False, floatfmt=".3f"), ""]
    if validation_files:
        val = long_table(validation_files, modes_required=False)
        best = best_iteration(df, val)
        if best["iteration"] is not None:
            md += validation_markdown(val, best)
        write_json(out_dir / "best.json", {**best, **mark})
    write_text(out_dir / "summary.md", "\n".join(md))
    with atomic_path(out_dir / "summary.csv") as tmp:
        wide.to_csv(tmp, index=False, float_format="%.4f")
    return wide


def headline(wide: pd.DataFrame) -> dict:
    """The numbers `dvc exp show` leads with: accuracy per verdict mode of the seed (`baseline`) and of the
    last iteration (`final`)."""
    iters = sorted(int(c.split()[1]) for c in wide.columns if str(c).startswith("iter "))
    acc = wide[wide["statistic"] == "accuracy"].set_index("mode")
    pick = lambda k: {m: float(acc.loc[m, f"iter {k}"]) for m in acc.index}    # noqa: E731
    return {"final": {"iteration": iters[-1], **pick(iters[-1])}, "baseline": pick(iters[0])}


def print_table(wide: pd.DataFrame, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="judge per iteration")
    for c in wide.columns:
        t.add_column(str(c), justify="left" if c in ("mode", "statistic") else "right")
    for row in wide.itertuples(index=False):
        t.add_row(*(_fmt(v) for v in row))
    console.print(t)
