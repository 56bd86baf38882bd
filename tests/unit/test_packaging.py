"""pyproject.toml is true to the code: every third-party package src/ imports is a declared requirement (a
dependency, or an optional extra for the modules that import it only behind one), and requires-python is
the oldest Python the code runs on."""

import ast
import re
import sys
import tomllib

from support.repo import ROOT

# import names whose distribution is named otherwise
DISTRIBUTION = {"yaml": "pyyaml"}

# stdlib APIs the code may use, with the Python version that added them
NEWER_STDLIB = {("contextlib", "chdir"): (3, 11), ("tomllib", None): (3, 11), ("typing", "Self"): (3, 11),
                ("datetime", "UTC"): (3, 11), ("enum", "StrEnum"): (3, 11), ("itertools", "batched"): (3, 12),
                ("typing", "override"): (3, 12)}


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~\[;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def declared(project) -> tuple[set, set]:
    """(names of the dependencies, names of every optional extra's packages)."""
    extras = {requirement_name(s) for specs in project.get("optional-dependencies", {}).values()
              for s in specs}
    return {requirement_name(s) for s in project["dependencies"]}, extras


def third_party_imports(root) -> dict:
    """{top-level module: [files importing it]} of the absolute imports under `root` outside the stdlib
    and the package itself."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "selftaught":
                    out.setdefault(top, []).append(f.relative_to(root).as_posix())
    return out


def undeclared(root, project) -> list:
    deps, extras = declared(project)
    return sorted(m for m in third_party_imports(root) if DISTRIBUTION.get(m, m).replace("_", "-")
                  not in deps | extras)


def stdlib_needs(root) -> dict:
    """{the newest Python version an stdlib API of the code needs: [where]}."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            hits = []
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                hits = [(node.value.id, node.attr)]
            elif isinstance(node, ast.ImportFrom) and node.module:
                hits = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                hits = [(a.name, None) for a in node.names]
            for hit in hits:
                if hit in NEWER_STDLIB:
                    out.setdefault(NEWER_STDLIB[hit], []).append(f"{f.relative_to(root)}:{node.lineno}")
    return out


def lower_bound(spec: str) -> tuple:
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert m, f"requires-python should be a plain lower bound, got {spec!r}"
    return int(m[1]), int(m[2])


def test_every_imported_third_party_package_is_declared():
    assert undeclared(ROOT / "src", pyproject()["project"]) == []


def test_modules_behind_an_extra_are_only_imported_where_the_extra_is_optional():
    """vllm is an extra (its own venv): only its backend module imports it."""
    deps, extras = declared(pyproject()["project"])
    imports = third_party_imports(ROOT / "src")
    for module in imports:
        if DISTRIBUTION.get(module, module) not in deps:
            assert set(imports[module]) == {"selftaught/backends/vllm_backend.py"}, (module, imports[module])


def test_an_undeclared_import_is_found(tmp_path):
    (tmp_path / "m.py").write_text("import json\nimport numpy as np\nfrom yaml import safe_load\n")
    assert undeclared(tmp_path, {"dependencies": ["pyyaml>=6"]}) == ["numpy"]


def test_requires_python_is_the_oldest_version_the_code_runs_on():
    cfg = pyproject()
    bound = lower_bound(cfg["project"]["requires-python"])
    needs = stdlib_needs(ROOT / "src")
    assert needs, "the scan finds contextlib.chdir in verify.py"
    assert bound >= max(needs), needs
    # ruff lints for the same version, and the test runs on one that satisfies it
    assert cfg["tool"]["ruff"]["target-version"] == f"py{bound[0]}{bound[1]}"
    assert sys.version_info[:2] >= bound


def test_a_newer_stdlib_api_raises_the_bound(tmp_path):
    (tmp_path / "m.py").write_text("import contextlib\nwith contextlib.chdir('.'):\n    pass\n")
    assert max(stdlib_needs(tmp_path)) == (3, 11)
    assert lower_bound(">=3.10") < max(stdlib_needs(tmp_path))
