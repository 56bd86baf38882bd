"""Stage `filter@k`: rejection sampling of iteration k's judgments into SFT records, and correct-vs-wrong
judgment pairs for preference training (train.objective dpo), with stats."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.io import read_jsonl, write_json, write_jsonl
from selftaught.core.runner import run_stage
from selftaught.core.schemas import Judgment, SyntheticPair
from selftaught.filtering import filter_judgments
from selftaught.prompts import judge_prompt
from selftaught.report import print_stats


def main(params, args):
    pairs = {p.id: p for p in read_jsonl(args.pairs, SyntheticPair)}
    judgments = [Judgment.from_dict(d, args.judgments, n)
                 for n, d in enumerate(read_jsonl(args.judgments), 1)]
    prompt = judge_prompt(params)               # judge.template and judge.verdict_format, as the judge used
    records, prefs, stats = filter_judgments(judgments, pairs, params.filter,
                                             params.generation.max_judged_chars, prompt)
    write_jsonl(args.out, records)
    write_jsonl(args.preferences, prefs)
    write_json(args.metrics, stats)
    print_stats(f"filter, iteration {args.iteration}", stats)


if __name__ == "__main__":
    run_stage(main, "pairs", "judgments", "out", "preferences", "metrics", iteration=True,
              outputs=("out", "preferences", "metrics"))
