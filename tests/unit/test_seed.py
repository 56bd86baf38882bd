"""Model sources (src/selftaught/seed.py): the generator record that names the seed, and who judges an
iteration's pairs."""

from pathlib import Path

from selftaught.core.config import ModelSource
from selftaught.seed import build_generator, judge_model, resolve_model


def test_the_generator_record_resolves_to_the_seed(tmp_path):
    seed = tmp_path / "iter_0"
    seed.mkdir()
    (seed / "config.json").write_text("{}")
    build_generator(ModelSource(source="seed", path=str(seed)), tmp_path / "generator")
    assert resolve_model(tmp_path / "generator") == seed
    assert resolve_model(seed) == seed


def test_iteration_one_is_judged_by_the_seed_or_the_generator(tmp_path):
    own = tmp_path / "mixtral"
    own.mkdir()
    (own / "config.json").write_text("{}")
    assert judge_model(1, "seed", "models/iter_0", own) == Path("models/iter_0")
    assert judge_model(1, "generator", "models/iter_0", own) == own
    assert judge_model(2, "generator", "models/iter_1", own) == Path("models/iter_1")  # the last judge
