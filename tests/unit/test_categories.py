"""Category labels and the category filter (src/selftaught/categories.py, data.keep_categories)."""

import pytest

from selftaught.categories import parse_category
from selftaught.core.config import Data
from selftaught.core.schemas import Instruction
from selftaught.data import keep_categories


def test_categories_parse_and_filter():
    cats = ["reasoning", "coding", "math", "writing", "other"]
    assert parse_category("Coding.", cats) == "coding"
    assert parse_category("Category: **math**", cats) == "math"
    assert parse_category("I think it is mathematics", cats) is None
    pool = [Instruction(f"i{n}", f"instruction {n}") for n in range(5)]
    labels = {"i0": "coding", "i1": "math", "i2": "unparseable", "i3": "coding", "i4": "writing"}
    kept, counts = keep_categories(pool, labels, ["coding", "math"])
    assert [x.id for x in kept] == ["i0", "i1", "i3"]
    assert counts == {"labelled": {"coding": 2, "math": 1, "unparseable": 1, "writing": 1},
                      "kept": {"coding": 2, "math": 1}}
    assert len(keep_categories(pool, labels, [])[0]) == 5
    with pytest.raises(ValueError, match="distinct"):
        Data(categories=["math", "math"])
