"""The layout's rules, checked: small signatures (settings objects instead of long argument lists), imports
without sys.path tricks between tests, benchmarks and scripts, and a dvc.yaml short enough to read."""

import ast
import re

from support.repo import ROOT

MAX_PARAMS = 7


def long_signatures(root):
    out = []
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) > MAX_PARAMS:
                    out.append(f"{f.relative_to(root)}:{node.lineno} {node.name} ({len(names)})")
    return out


def test_no_function_in_the_package_takes_more_than_seven_parameters():
    assert long_signatures(ROOT / "src") == []


def test_the_signature_check_finds_a_long_one(tmp_path):
    (tmp_path / "m.py").write_text("def f(a, b, c, d, e, f, g, *, h=1):\n    pass\n")
    assert len(long_signatures(tmp_path)) == 1


def test_tests_benchmarks_and_scripts_import_without_path_edits():
    hits = [f"{f.relative_to(ROOT)}:{n}" for d in ("tests", "benchmarks", "scripts")
            for f in sorted((ROOT / d).rglob("*.py"))
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"sys\.path(\.insert|\[)", line) and f.name != "test_layout.py"]
    assert hits == []


def test_dvc_yaml_stays_short():
    assert len((ROOT / "dvc.yaml").read_text(encoding="utf-8").splitlines()) <= 220
