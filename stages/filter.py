"""Stage `filter@k`: rejection sampling of iteration k's judgments into SFT records, with stats."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.filtering import rejection_sample, training_records
from selftaught.io import read_jsonl, write_json, write_jsonl
from selftaught.report import print_stats
from selftaught.runner import run_stage
from selftaught.schemas import Judgment, SyntheticPair


def main(params, args):
    pairs = {p.id: p for p in read_jsonl(args.pairs, SyntheticPair)}
    judgments = [Judgment.from_dict(d, args.judgments, n) for n, d in enumerate(read_jsonl(args.judgments), 1)]
    kept, stats = rejection_sample(judgments, params.filter.seed, params.filter.balance)
    records, counts = training_records(kept, pairs, params.generation.max_judged_chars, params.filter.reasoning)
    stats.update(counts)
    write_jsonl(args.out, records)
    write_json(args.metrics, stats)
    print_stats(f"filter, iteration {args.iteration}", stats)


if __name__ == "__main__":
    run_stage(main, "pairs", "judgments", "out", "metrics", iteration=True)
