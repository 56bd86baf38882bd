"""The fidelity table of docs/paper.md, generated from configs/profiles/paper_reference.yaml.

    python scripts/paper_table.py            # rewrite the marked block of docs/paper.md
    python scripts/paper_table.py --check    # exit 1 if docs/paper.md differs from what this would write

The table shows, per setting, the paper's / released code's value, its source, our params key and the value
configs/profiles/paper.yaml resolves to over params.yaml. `resolve` and `mismatches` are shared with
tests/unit/test_paper_profile_fidelity.py: a profile key that params.yaml does not have yet is reported, not
fatal, so the table and the test work key by key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from selftaught import profile
from selftaught.core.config import read_raw
from selftaught.core.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]

REFERENCE = ROOT / "configs" / "profiles" / "paper_reference.yaml"
PROFILE = ROOT / "configs" / "profiles" / "paper.yaml"
PARAMS = ROOT / "params.yaml"
DOC = ROOT / "docs" / "paper.md"
START, END = "<!-- paper-reference:start -->", "<!-- paper-reference:end -->"
MISSING = object()
FIELDS = {"setting", "key", "value", "source", "ours", "conflict", "note"}


def load_reference(path=REFERENCE) -> list[dict]:
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not {"setting", "key", "value", "source"} <= set(e) or set(e) - FIELDS:
            raise ValueError(f"{path}: entry {i} needs setting, key, value, source ({sorted(FIELDS)})")
        if e["key"] is None and not e.get("ours"):
            raise ValueError(f"{path}: entry {e['setting']!r} has no key: it needs `ours:`")
    return entries


def lookup(tree, key: str):
    """The value at a dotted key of a parsed params tree, or MISSING."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def resolve(profile_path=PROFILE, params_path=PARAMS) -> tuple[dict, list[str]]:
    """params.yaml with the profile applied (raw, unvalidated), and the profile keys params.yaml lacks."""
    params, overrides = read_raw(params_path), profile.read(profile_path)
    unknown = [k for k in overrides if lookup(params, k) is MISSING]
    known = {k: v for k, v in overrides.items() if k not in unknown}
    try:
        return profile.apply(params, known, str(profile_path)), unknown
    except ParamError as e:       # cannot happen: every key in `known` was found above
        raise AssertionError(e) from None


def mismatches(reference: list[dict], resolved: dict, unknown=()) -> list[str]:
    """One line per keyed entry without `ours:` whose resolved value differs from the reference value."""
    out = []
    for e in reference:
        key = e["key"]
        if key is None or e.get("ours"):
            continue
        got = lookup(resolved, key)
        if got is MISSING:
            why = "set by the profile but not" if key in unknown else "neither set by the profile nor"
            out.append(f"{key}: {why} a key of params.yaml (reference: {e['value']!r})")
        elif not _same(got, e["value"]):
            out.append(f"{key}: profile resolves to {got!r}, the reference says {e['value']!r} "
                       f"({e['source']})")
    return out


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _fmt(v) -> str:
    if v is MISSING:
        return "(no such key yet)"
    if isinstance(v, str):
        return v
    text = yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def block(reference: list[dict], resolved: dict) -> str:
    rows = ["| setting | the paper / released code | source | our key | profile value | note |",
            "|---|---|---|---|---|---|"]
    for e in reference:
        key = e["key"]
        got = _fmt(lookup(resolved, key)) if key else "—"
        notes = [f"ours: {e['ours']}" if e.get("ours") else "", e.get("note", "")]
        rows.append("| " + " | ".join(_cell(c) for c in (
            e["setting"], _fmt(e["value"]), e["source"], _code(key or ""), _code(got) if key else got,
            "; ".join(n for n in notes if n))) + " |")
    disagree = [f"- **{_cell(e['setting'])}**: {_cell(e['conflict'])} (we follow: {_cell(_fmt(e['value']))})"
                for e in reference if e.get("conflict")]
    return "\n".join([START, "", *rows, "", "### Where the sources disagree", "", *disagree, "", END])


def render(doc_text: str, reference, resolved) -> str:
    head, sep, rest = doc_text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC}: the markers {START} and {END} are missing")
    return head + block(reference, resolved) + tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/paper.md is not up to date")
    args = ap.parse_args(argv)
    resolved, _ = resolve()
    text = DOC.read_text(encoding="utf-8")
    new = render(text, load_reference(), resolved)
    if args.check:
        if new != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/paper_table.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
