"""The records (src/selftaught/core/schemas.py): a lone surrogate is named with its file, line and field;
empty responses are data, judged like any other."""

from support.hostile import DATA_ARGS, PAIRS, data_repo, jsonl, judge, one_line, pool_file, snapshot, stage

from selftaught.core.io import read_jsonl


def test_lone_surrogate_in_a_record_is_named(tmp_path):
    pool = pool_file(tmp_path / "pool.jsonl", extra=['{"id": "bad", "instruction": "broken \\ud83d text"}'])
    data_repo(tmp_path, pool=pool)
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "pool.jsonl, line 7: field 'instruction'" in line and "surrogate" in line
    assert snapshot(tmp_path) == before


# -- 5. empty responses are data; --skip-invalid -------------------------------------------------------------

def test_empty_responses_are_judged(cli_dir, capsys):
    tmp, model = cli_dir
    jsonl(tmp / "pairs.jsonl", [{**PAIRS[0], "chosen": ""}, {**PAIRS[1], "rejected": ""}, PAIRS[2]])
    before = (tmp / "pairs.jsonl").read_bytes()
    code, err = judge(tmp, model, capsys)
    assert code == 0, err
    recs = read_jsonl(tmp / "out.jsonl")
    assert (sorted((r["pair_id"], r["order"]) for r in recs)
            == [(f"q{i}", o) for i in range(3) for o in (0, 1)])
    assert (tmp / "pairs.jsonl").read_bytes() == before
