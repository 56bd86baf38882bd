"""SFT of the next judge with TRL on prompt-completion records (loss on the judgment tokens only)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .backends import load_model, set_determinism
from .config import Train


def sft_config(p: Train, output_dir: str):
    from trl import SFTConfig

    cpu = not torch.cuda.is_available()
    return SFTConfig(
        output_dir=output_dir, num_train_epochs=p.epochs, learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size, gradient_accumulation_steps=p.grad_accum,
        max_length=p.max_length, lr_scheduler_type=p.lr_scheduler,
        warmup_steps=p.warmup_steps, weight_decay=0.0,
        completion_only_loss=True, packing=False, seed=p.seed, data_seed=p.seed, full_determinism=True,
        use_cpu=cpu, bf16=False, fp16=False, gradient_checkpointing=False, dataloader_num_workers=0,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=False,
    )


def lora_config(p: Train):
    from peft import LoraConfig

    return LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules="all-linear")


def n_tokens(tok, record) -> int:
    return len(tok.apply_chat_template(record["prompt"] + record["completion"], tokenize=True))


def train(records, init_dir, out_dir: Path, p: Train, threads: int = 0) -> dict:
    """Fine-tune `init_dir` on `records`; save the result (full model or LoRA adapter) in `out_dir`."""
    from datasets import Dataset
    from trl import SFTTrainer

    if not records:
        raise ValueError("the filter kept no judgments, so there is nothing to train on: use judge.mode "
                         "'constrained', more judge.samples, or a stronger seed")
    set_determinism(threads)
    model, tok = load_model(init_dir, dtype="float32")
    model.train()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    fits = [r for r in records if n_tokens(tok, r) <= p.max_length]
    if not fits:
        raise ValueError(f"all {len(records)} training records are longer than train.max_length={p.max_length} tokens")
    ds = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in fits])
    trainer = SFTTrainer(model=model, args=sft_config(p, str(out_dir.parent / ".trainer")), train_dataset=ds,
                         processing_class=tok, peft_config=lora_config(p) if p.method == "lora" else None)
    result = trainer.train()
    trainer.model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    if p.method == "lora":     # the adapter points at the checkpoint it was trained on, by repo path
        cfg_path = out_dir / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = str(init_dir)
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
    return {"examples": len(fits), "too_long": len(records) - len(fits), "steps": trainer.state.global_step, "train_loss": round(result.training_loss, 5),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "method": p.method, "init": str(init_dir), "loss_curve": losses}
