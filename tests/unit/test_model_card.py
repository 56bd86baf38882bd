"""The model card: deterministic bytes, its inputs named by the md5s DVC records, facts readable back."""

from selftaught import model_card
from selftaught.core.config import Params
from selftaught.dvc_hash import md5


def card(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"prompt": [], "completion": []}\n')
    (tmp_path / "iter_0").mkdir(exist_ok=True)
    (tmp_path / "iter_0" / "config.json").write_text("{}\n")
    return model_card.Card(1, "train@1", parent=str(tmp_path / "iter_0"),
                           inputs=(tmp_path / "train.jsonl", tmp_path / "iter_0"),
                           params={"train": Params().train.model_dump(), "seed": Params().seed.model_dump()},
                           metrics={"train_loss": 1.23456, "steps": 3},
                           judge={"template": "judge_template.yaml", "verdict_format": "last_line",
                                  "mode": "constrained", "calibrate": True})


def test_the_card_is_deterministic_and_names_its_inputs_by_md5(tmp_path):
    c = card(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    model_card.write(out, c)
    text = (out / model_card.CARD).read_text()
    assert text == model_card.render(card(tmp_path))
    facts = model_card.read(out)["selftaught"]
    assert facts["iteration"] == 1 and facts["parent"] == str(tmp_path / "iter_0")
    assert facts["inputs_md5"] == {(tmp_path / "train.jsonl").as_posix(): md5(tmp_path / "train.jsonl"),
                                   (tmp_path / "iter_0").as_posix(): md5(tmp_path / "iter_0")}
    assert facts["params"]["train"]["objective"] == "sft" and facts["metrics"]["train_loss"] == 1.23456
    assert "| objective | sft |" in text and "from selftaught import Judge" in text
    assert "judge.json" in text


def test_a_changed_input_changes_the_card(tmp_path):
    c = card(tmp_path)
    before = model_card.render(c)
    (tmp_path / "iter_0" / "config.json").write_text('{"x": 1}\n')
    assert model_card.render(c) != before


def test_a_checkpoint_without_a_card_reads_none(tmp_path):
    assert model_card.read(tmp_path) is None
