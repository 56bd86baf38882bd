"""Tables of evaluation metrics: rich on the terminal, pandas for CSV/markdown, `dvc plots` for curves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from . import paths
from .io import atomic_path, write_text

METRICS = ("accuracy", "parse_rate", "position_consistency")


def print_eval(metrics: dict, console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    for mode, m in metrics["modes"].items():
        t = Table(title=f"iteration {metrics.get('iteration', '?')}, {mode} verdicts")
        for c in ("benchmark", "pairs", "accuracy", "± se", "parse rate", "position consistency", "A share"):
            t.add_column(c)
        for b, bm in m["benchmarks"].items():
            t.add_row(b, str(bm["pairs"]), f"{bm['accuracy']:.3f}", f"{bm['accuracy_stderr']:.3f}",
                      f"{bm['parse_rate']:.3f}", f"{bm['position_consistency']:.3f}", f"{bm['a_share']:.3f}")
        t.add_row("[bold]mean", "", f"{m['accuracy']:.3f}", f"{m['accuracy_stderr']:.3f}", f"{m['parse_rate']:.3f}",
                  f"{m['position_consistency']:.3f}", f"{m['a_share']:.3f}")
        console.print(t)


def long_table(metric_files) -> pd.DataFrame:
    rows = []
    for f in metric_files:
        m = json.loads(Path(f).read_text())
        for mode, mm in m["modes"].items():
            for b, bm in {**mm["benchmarks"], "mean": mm}.items():
                rows.append({"iteration": m["iteration"], "mode": mode, "benchmark": b,
                             **{k: bm[k] for k in METRICS}, "stderr": bm["accuracy_stderr"]})
    return pd.DataFrame(rows).sort_values(["mode", "benchmark", "iteration"], kind="stable").reset_index(drop=True)


def write_report(metric_files, out_dir=paths.REPORTS, primary="free") -> pd.DataFrame:
    df = long_table(metric_files)
    out_dir = Path(out_dir)
    prim = df[df["mode"] == primary] if (df["mode"] == primary).any() else df
    for metric in METRICS:      # wide CSVs: one line per benchmark in `dvc plots show`
        wide = prim.pivot(index="iteration", columns="benchmark", values=metric).reset_index()
        with atomic_path(out_dir / f"{metric}.csv") as tmp:
            wide.to_csv(tmp, index=False, float_format="%.4f")
    md = ["# Judge accuracy per iteration", "",
          "Accuracy counts both orders of every pair, an unparseable verdict as half right; stderr is over pairs.", ""]
    for mode, sub in df.groupby("mode", sort=True):
        md += [f"## {mode} verdicts", "", sub.drop(columns="mode").to_markdown(index=False, floatfmt=".3f"), ""]
    write_text(out_dir / "summary.md", "\n".join(md))
    with atomic_path(out_dir / "summary.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    return df


def print_table(df: pd.DataFrame, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="judge per iteration")
    for c in df.columns:
        t.add_column(str(c))
    for row in df.itertuples(index=False):
        t.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(t)
