"""Stage `filter@k`: rejection sampling of iteration k's judgments into SFT records, and correct-vs-wrong
judgment pairs for preference training (train.objective dpo), with stats. It streams: one pass over the
judgments keeps a few fields and the byte offset of each, then only the chosen ones are read back and written
record by record (filtering.stream_filter), so its memory does not grow with the texts of the judgments."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from selftaught.core.io import write_json
from selftaught.core.metrics import synthetic_mark
from selftaught.core.runner import run_stage
from selftaught.filtering import stream_filter
from selftaught.prompts import judge_prompt
from selftaught.report import print_stats


def main(params, args):
    prompt = judge_prompt(params)               # judge.template and judge.verdict_format, as the judge used
    stats = stream_filter(args.pairs, args.judgments, params.filter, prompt, args.out, args.preferences)
    stats.update(synthetic_mark(params))
    write_json(args.metrics, stats)
    print_stats(f"filter, iteration {args.iteration}", stats)


if __name__ == "__main__":
    run_stage(main, "pairs", "judgments", "out", "preferences", "metrics", iteration=True,
              outputs=("out", "preferences", "metrics"))
