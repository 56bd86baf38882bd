"""Does preference training on the synthetic pairs make the likelihood judge better? (analysis, not a test)

    python benchmarks/response_dpo.py [--model models/iter_0] [--pairs work/iter_1/pairs.jsonl,work/iter_2/pairs.jsonl]

The likelihood mode scores a response by log p(r | x) - log p(r | neutral). The synthetic pairs say which of
two responses answers x; TRL's DPOTrainer on (x, chosen, rejected) raises log p(chosen | x) against
log p(rejected | x) relative to the starting model. This script trains that on the given pairs (no human
labels), then evaluates the starting and the trained model in likelihood mode on the evaluation benchmarks
(work/data/benchmarks.jsonl), with the pipeline's own judging and metrics code, and prints both.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selftaught.core import config  # noqa: E402
from selftaught.backends import load_model, make_judging_backends, set_determinism  # noqa: E402
from selftaught.evaluation import evaluate_all  # noqa: E402
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.judging import judge_likelihood  # noqa: E402
from selftaught.prompts import answer_messages, truncate  # noqa: E402
from selftaught.core.schemas import Pair, SyntheticPair  # noqa: E402


def likelihood_accuracy(model_dir, bench, max_chars):
    """The evaluate stages' likelihood judging: their backend factory, generation params and likelihood_dtype."""
    params = config.load()
    _, be = make_judging_backends(model_dir, params.generation, ["likelihood"], params.evaluate.likelihood_dtype)
    m = evaluate_all(judge_likelihood(be, bench, max_chars, desc=f"likelihood {Path(model_dir).name}"), bench)
    return {"mean": m["accuracy"], **{b: v["accuracy"] for b, v in m["benchmarks"].items()}}


def train_dpo(model_dir, pairs, out_dir, args):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tok = load_model(model_dir, dtype="float32")
    ref, _ = load_model(model_dir, dtype="float32")
    rows = [{"prompt": answer_messages(truncate(p.instruction, args.max_chars)),
             "chosen": [{"role": "assistant", "content": truncate(p.chosen, args.max_chars)}],
             "rejected": [{"role": "assistant", "content": truncate(p.rejected, args.max_chars)}]} for p in pairs]
    cfg = DPOConfig(output_dir=str(out_dir / "trainer"), num_train_epochs=args.epochs, learning_rate=args.lr,
                    per_device_train_batch_size=args.batch_size, beta=args.beta, max_length=args.max_length,
                    seed=4, data_seed=4, use_cpu=True, bf16=False, logging_steps=2, save_strategy="no",
                    report_to="none", disable_tqdm=True, lr_scheduler_type="linear")
    trainer = DPOTrainer(model=model, ref_model=ref, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    model = trainer.model
    model.save_pretrained(out_dir / "model", safe_serialization=True)
    tok.save_pretrained(out_dir / "model")
    return out_dir / "model", logs, trainer.state.global_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--pairs", default="work/iter_1/pairs.jsonl,work/iter_2/pairs.jsonl")
    ap.add_argument("--benchmarks", default="work/data/benchmarks.jsonl")
    ap.add_argument("--max-chars", type=int, default=800)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    set_determinism(2)
    pairs = [p for f in args.pairs.split(",") for p in read_jsonl(f, SyntheticPair)]
    bench = read_jsonl(args.benchmarks, Pair)
    rows = {"start": likelihood_accuracy(args.model, bench, args.max_chars)}
    with tempfile.TemporaryDirectory() as tmp:
        trained, logs, steps = train_dpo(args.model, pairs, Path(tmp), args)
        rows["after DPO"] = likelihood_accuracy(trained, bench, args.max_chars)
    console = Console()
    console.print(f"DPO on {len(pairs)} synthetic pairs, {steps} steps; last logged reward accuracy "
                  f"{logs[-1].get('rewards/accuracies')}, last loss {logs[-1]['loss']:.3f}")
    table = Table(title=f"likelihood-mode accuracy, both orders ({args.model}; lr {args.lr}, beta {args.beta}, "
                        f"{args.epochs} epoch)")
    cols = list(rows["start"])
    table.add_column("model")
    for c in cols:
        table.add_column(c)
    for name, r in rows.items():
        table.add_row(name, *(f"{r[c]:.3f}" for c in cols))
    console.print(table)


if __name__ == "__main__":
    main()
