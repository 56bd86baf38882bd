"""Stage `categorize`: the generator model labels each instruction of the pools (data.instructions) with one
of data.categories, for the data stage to keep data.keep_categories. With data.categories empty (the default)
it writes an empty file and loads no model."""

import _bootstrap  # noqa: F401,I001  (src/ first on sys.path)

from collections import Counter

from selftaught.core.io import write_jsonl
from selftaught.core.runner import console, run_stage


def main(params, args):
    d = params.data
    if not d.categories:
        write_jsonl(args.out, [])
        return
    from selftaught.backends import make_backend
    from selftaught.categories import label
    from selftaught.core.schemas import Instruction
    from selftaught.data import read_many
    from selftaught.prompts import check_category_template
    from selftaught.seed import resolve_model

    check_category_template(params)                  # a bad template fails before the model loads
    pool = [rec for _, rec in read_many(d.instructions, Instruction)]
    backend = make_backend(resolve_model(args.model), params.generation, params.trust_remote_code)
    records = label(backend, pool, d.categories, d.category_max_new_tokens,
                    params.generation.max_judged_chars, d.category_template)
    write_jsonl(args.out, records)
    console.print(dict(sorted(Counter(r["category"] for r in records).items())))


if __name__ == "__main__":
    run_stage(main, "model", "out")
