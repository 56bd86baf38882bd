"""dvc.yaml cannot go stale: every stage depends on each package module it imports (transitively), and every
path its command names is one of its declared deps or outs."""

import ast
import shlex
import subprocess
from pathlib import Path

import pytest
from support.repo import ROOT


def stages(root=ROOT):
    """dvc.yaml's stages as DVC resolves them (foreach expanded): name -> (cmd, deps, outs)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        out = {}
        for st in repo.index.stages:
            if not st.cmd:                      # a .dvc file (tracked data), not a pipeline stage
                continue
            rel = lambda o: Path(o.fs_path).relative_to(root).as_posix()    # noqa: E731
            outs = [rel(o) for o in st.outs]
            out[st.name] = (st.cmd, [rel(d) for d in st.deps if not hasattr(d, "params")
                                           and type(d).__name__ != "ParamsDependency"], outs)
        return out


def module_file(parts, root):
    f = root / "src" / Path(*parts)
    for cand in (f.with_suffix(".py"), f / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_modules(path: Path, root: Path) -> set:
    """Files of src/selftaught that `path` imports (any import statement, at any depth, relative or absolute);
    importing a package also runs its __init__.py."""
    found = set()
    pkg_parts = path.relative_to(root / "src").parent.parts if root / "src" in path.parents else ()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = (pkg_parts[:len(pkg_parts) - node.level + 1] if node.level else ()) + \
                   tuple((node.module or "").split(".") if node.module else ())
            if not base or base[0] != "selftaught":
                continue
            candidates = [base] + [base + (a.name,) for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [tuple(a.name.split(".")) for a in node.names
                          if a.name.split(".")[0] == "selftaught"]
        else:
            continue
        for parts in candidates:
            for i in range(1, len(parts) + 1):          # a.b.c imports a/__init__, a/b/__init__ too
                f = module_file(parts[:i], root)
                if f:
                    found.add(f)
    return found


def closure(script: Path, root: Path) -> set:
    seen, todo = set(), [script]
    while todo:
        for f in imported_modules(todo.pop(), root):
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return seen


def covered(path: str, deps) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def missing_deps(root=ROOT):
    """(stage, module) pairs where the stage's script imports a package module that its deps miss."""
    out = []
    for name, (cmd, deps, _) in stages(root).items():
        script = next(w for w in shlex.split(cmd) if w.endswith(".py"))
        assert covered(script, deps), f"{name}: its script {script} is not a dep"
        for f in sorted(closure(root / script, root)):
            rel = f.relative_to(root).as_posix()
            if not covered(rel, deps):
                out.append((name, rel))
    return out


def test_every_imported_module_is_a_dep():
    assert missing_deps() == []


def test_a_planted_undeclared_import_is_caught(tmp_path):
    """Copy the stages and package, add one import to a module the judge stage uses: the check names it."""
    import shutil

    for d in ("stages", "src"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    verdict = tmp_path / "src" / "selftaught" / "verdict.py"
    verdict.write_text(verdict.read_text() + "\nfrom . import training  # noqa\n")
    missing = missing_deps(tmp_path)
    assert ("judge@1", "src/selftaught/training.py") in missing
    assert ("evaluate_seed@0", "src/selftaught/training.py") in missing


@pytest.mark.parametrize("name", ["data", "synthesize@1", "judge@2", "filter@1", "train@2", "evaluate@1",
                                  "summary"])
def test_command_paths_are_declared(name):
    """Every path in a stage's command is a dep or an out of that stage: dvc.yaml is the one home of paths."""
    cmd, deps, outs = stages()[name]
    words = shlex.split(cmd)
    paths = [words[i + 1] for i, w in enumerate(words) if w.startswith("--") and w not in ("--iteration",)]
    assert paths
    for p in paths:
        assert p in deps or p in outs or any(o.startswith(p + "/") for o in outs), (name, p)


# The template files a stage reads, by the params keys that name them.
TEMPLATE_PARAMS = {"synthesize": ("synthesize.modify_template", "synthesize.answer_template",
                                  "synthesize.rewrite_template"),
                   "categorize": ("data.category_template",),
                   "judge": ("judge.template",), "filter": ("judge.template",),
                   "evaluate": ("judge.template",), "evaluate_seed": ("judge.template",)}


def template_deps_missing(root=ROOT):
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    out = []
    for name, (_, deps, _) in stages(root).items():
        for key in TEMPLATE_PARAMS.get(name.split("@")[0], ()):
            section, field = key.split(".")
            if not covered(params[section][field], deps):
                out.append((name, key))
    return out


def test_every_template_file_a_stage_reads_is_a_dep():
    assert template_deps_missing() == []


def test_evaluate_depends_on_the_answer_template_of_likelihood_mode():
    """Likelihood mode renders its requests and neutral request with our default answer template (no
    param)."""
    from selftaught.prompts import DEFAULTS

    got = stages()
    for name in ("evaluate@1", "evaluate_seed@0"):
        assert DEFAULTS["answer"].relative_to(ROOT).as_posix() in got[name][1], name


def test_the_template_a_param_names_becomes_the_dep(tmp_path):
    """Point judge.template at another file: the judging stages depend on that file (and check its key)."""
    import shutil

    import yaml

    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["judge"]["template"] = "prompts/my_judge.yaml"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    got = stages(tmp_path)
    for name in ("judge@1", "filter@2", "evaluate@1", "evaluate_seed@0"):
        assert "prompts/my_judge.yaml" in got[name][1], name
    assert "prompts/my_judge.yaml" not in got["synthesize@1"][1]
    assert template_deps_missing(tmp_path) == []


def not_run_cached(root=ROOT):
    """Stages DVC never saves to its run-cache: `dvc repro` skips the run-cache for a stage with an output
    `cache: false` that is not a metric or plot (dvc/stage/__init__.py, Stage.run). Such a stage is
    recomputed by every `dvc exp run` and every fresh checkout of a revision, however long it takes."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted(st.name for st in repo.index.stages if st.cmd and any(
            not o.use_cache for o in st.outs if not (o.is_metric or o.is_plot)))


def test_every_costly_stage_is_restored_from_the_run_cache():
    """Only `summary` (seconds: it tabulates the metrics) may keep files in git outside metrics and plots;
    evaluation, the longest stage, must be restorable like training."""
    assert not_run_cached() == ["summary"]


def extra_deps(root=ROOT):
    """(stage, module) pairs where the stage declares a package module (file or folder) its script never
    imports: such a dep reruns the stage for a change that cannot affect it."""
    out = []
    for name, (cmd, deps, _) in stages(root).items():
        script = next(w for w in shlex.split(cmd) if w.endswith(".py"))
        used = {f.relative_to(root).as_posix() for f in closure(root / script, root)}
        for d in deps:
            module = d.endswith(".py") or (root / d).is_dir()  # a template file a param names is no module
            if (d.startswith("src/") and module
                    and not any(u == d or u.startswith(d.rstrip("/") + "/") for u in used)):
                out.append((name, d))
    return out


def test_no_stage_declares_a_module_it_does_not_import():
    """A change to a module reruns exactly the stages that import it (with the one above: deps == imports)."""
    assert extra_deps() == []


# -- every file a param names is a dependency of the stages that read it ------------------------------------

def test_every_param_naming_a_file_is_marked_and_its_readers_known():
    """config.path_keys() marks each key that names a file; a str or list[str] default that looks like a
    path must be one of them (gguf_member names a file inside the seed wheel, which is the dep)."""
    from support.repo import PATH_READERS

    from selftaught.core import config

    marked = config.path_keys()
    assert set(marked) == set(PATH_READERS)
    looks = set()
    for name, f in config.Params.model_fields.items():
        section = f.default if isinstance(f.default, config.Section) else None
        for key, value in (dict(section) if section is not None else {}).items():
            vals = value if isinstance(value, list) else [value]
            if vals and all(isinstance(v, str) for v in vals) and any("/" in v for v in vals):
                looks.add(f"{name}.{key}")
    assert looks - set(marked) == {"seed.gguf_member", "generator.gguf_member"}


def test_each_file_a_param_names_is_a_dep_of_every_stage_that_reads_it(tmp_path):
    """Point every path key at a file of its own: each stage that reads it depends on that file (a key that
    may hold any path is interpolated as the dep) or on the folder config.py confines it to."""
    import shutil

    import yaml
    from support.repo import PATH_READERS

    from selftaught.core import config

    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    files = {}
    for key, under in config.path_keys().items():
        section, name = key.split(".")
        path = (f"elsewhere/{name}.file" if under == config.PATH_DEP else f"{under}/{name}.file")
        params[section][name] = [path] if isinstance(params[section][name], list) else path
        files[key] = path
    params["generator"]["source"] = "hf_dir"
    config.validate(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    got = stages(tmp_path)
    for key, path in files.items():
        readers = [s for s in got if s.split("@")[0] in PATH_READERS[key]]
        assert len(readers) >= len(PATH_READERS[key]), (key, readers)
        for name in readers:
            assert covered(path, got[name][1]), (key, name, path)


def test_a_path_a_stage_does_not_depend_on_is_refused():
    """The other half of the rule: a list key, or one that may be empty, naming a file outside its folder."""
    import yaml

    from selftaught.core import config
    from selftaught.core.errors import ParamError

    for key, under in config.path_keys().items():
        if under == config.PATH_DEP:
            continue
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        section, name = key.split(".")
        params[section][name] = ["elsewhere/x"] if isinstance(params[section][name], list) else "elsewhere/x"
        with pytest.raises(ParamError, match=f"is not under {under}/"):
            config.validate(params)
