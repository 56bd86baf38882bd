"""dvc_hash computes the md5 DVC records: for a file and for a directory (nested folders, names that sort
differently as paths and as strings), equal to what `dvc add` writes."""

import yaml
from support.repo import run

from selftaught.dvc_hash import dir_md5, file_md5, md5


def test_file_and_directory_md5s_equal_dvcs(tmp_path):
    run("git init -q && dvc init -q", tmp_path)
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_text('{"x": 1}\n')
    (d / "a-b.txt").write_bytes(b"crlf\r\nline\n")          # '-' sorts before '/' as a string
    (d / "sub" / "w.bin").write_bytes(bytes(range(256)) * 9)
    (d / "sub" / "README.md").write_text("# card\n")
    (tmp_path / "data.jsonl").write_text('{"id": "1"}\n')
    run("dvc add -q model data.jsonl", tmp_path)
    for name, fn in (("model", dir_md5), ("data.jsonl", file_md5)):
        recorded = yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]
        assert fn(tmp_path / name) == md5(tmp_path / name) == recorded, name
    assert md5(d).endswith(".dir")
