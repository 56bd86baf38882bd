"""Stage `filter@k`: rejection sampling of iteration k's judgments into SFT records, with stats."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from rich.table import Table

from selftaught import paths
from selftaught.filtering import rejection_sample, training_records
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.runner import console, run_stage
from selftaught.schemas import Judgment, SyntheticPair


def main(params, k):
    pairs = {p.id: p for p in read_jsonl(paths.pairs(k), SyntheticPair)}
    judgments = [Judgment.from_dict(d, paths.judgments(k), n) for n, d in enumerate(read_jsonl(paths.judgments(k)), 1)]
    kept, stats = rejection_sample(judgments, params["filter"]["seed"], params["filter"]["balance"])
    records, counts = training_records(kept, pairs, params["generation"]["max_judged_chars"], params["filter"]["reasoning"])
    stats.update(counts)
    write_jsonl(paths.train_set(k), records)
    write_json(paths.filter_metrics(k), stats)
    table = Table(title=f"filter, iteration {k}")
    for key in stats:
        table.add_column(key.replace("_", " "))
    table.add_row(*(str(v) for v in stats.values()))
    console.print(table)


if __name__ == "__main__":
    run_stage(main, iteration=True)
