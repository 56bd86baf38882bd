"""The session's fixtures; the helpers they use live in tests/support (importable because pyproject.toml's
pytest `pythonpath` holds tests/)."""

import pytest
from support.hostile import PAIRS, jsonl, tiny_params
from support.repo import make_repo, run
from support.tiny_model import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def built_repo(tiny_model, tmp_path_factory):
    """The tiny repository after one full `dvc repro` (its output in ../repro.out), dvc.lock and metrics
    committed. Built once per session: each module takes its own copy with `copy_repo`."""
    repo = tmp_path_factory.mktemp("built") / "repo"
    repo.mkdir()
    make_repo(repo, tiny_model)
    (repo.parent / "repro.out").write_text(run(["dvc", "repro"], repo).stdout)
    run("git add -A && git commit -qm 'dvc repro'", repo)
    return repo


@pytest.fixture
def cli_dir(tmp_path, tiny_model):
    """A folder with the tiny profile's params.yaml and three labelled pairs, and the tiny model: what the
    hostile-input tests of `selftaught judge` start from."""
    tiny_params(tmp_path / "params.yaml")
    jsonl(tmp_path / "pairs.jsonl", PAIRS)
    return tmp_path, tiny_model


@pytest.fixture(autouse=True)
def _own_temps(tmp_path, monkeypatch):
    """Temp-folder registrations of code run in this process go to the test's own folder, never to this
    checkout's .temps (a dep of the summary stage: a killed writer's marker there would make `dvc status`
    report the pipeline changed)."""
    import selftaught.core.io as io

    monkeypatch.setattr(io, "TEMPS", tmp_path / ".temps")
