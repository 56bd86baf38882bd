"""Training of the next judge with TRL: SFT on the kept judgments (loss on the judgment tokens only), or DPO
on (correct, wrong) judgment pairs, optionally with an NLL term on the correct judgment (train.objective).

The same code runs as one process or as N processes under `accelerate launch` (DDP, FSDP): every rank trains
and joins the collectives (gradient all-reduce, the FSDP gather of the full weights at the end), and only the
main process writes the checkpoint."""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path

import torch

from .backends import load_model, set_determinism
from .backends.encoding import chat_ids
from .core.config import Train
from .core.errors import InputError, ParamError
from .core.io import iter_jsonl


def process_rank() -> int:
    """This process's global rank under `accelerate launch` (torchrun sets RANK); 0 when not distributed."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """The one process that writes the stage's outputs."""
    return process_rank() == 0


def check_precision(p: Train) -> None:
    """Refuse train.precision bf16 where it cannot run as asked (no CUDA GPU with bfloat16)."""
    if p.precision == "bf16" and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        raise ParamError("train.precision", "bf16 needs a CUDA GPU with bfloat16 support and this machine "
                                            "has none (CPU-only training is fp32); got 'bf16'")


def check_launch(p: Train) -> None:
    """Refuse, before anything starts, a training setup this machine cannot run as asked: train.precision bf16
    without a CUDA GPU, a train.accelerate_config that is missing or unreadable, or one that asks for FSDP
    without a CUDA GPU (accelerate 1.15 shards only on GPUs: on CPUs it would silently train with DDP)."""
    check_precision(p)
    if not p.accelerate_config:
        return
    path = Path(p.accelerate_config)
    if not path.is_file():
        raise ParamError("train.accelerate_config", f"no such file: {str(path)!r}")
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        cfg = load_config_from_file(str(path))
    except Exception as e:  # noqa: BLE001  (yaml, type and value errors of accelerate's loader)
        raise ParamError("train.accelerate_config", f"{str(path)!r} is not an accelerate config "
                                                    f"({type(e).__name__}: {e})") from None
    if str(cfg.distributed_type).endswith("FSDP") and not torch.cuda.is_available():
        raise ParamError("train.accelerate_config",
                         f"{str(path)!r} asks for FSDP, which accelerate runs on CUDA GPUs only (on CPUs "
                         f"it would train with DDP instead); on CPUs use configs/accelerate/ddp_cpu.yaml")


def _final_rate(p: Train) -> dict:
    """The scheduler; a cosine that ends at train.final_learning_rate is transformers' cosine_with_min_lr."""
    if not p.final_learning_rate:
        return {"lr_scheduler_type": p.lr_scheduler}
    return {"lr_scheduler_type": "cosine_with_min_lr",
            "lr_scheduler_kwargs": {"min_lr": p.final_learning_rate}}


def _args(p: Train, output_dir: str) -> dict:
    """The TrainingArguments shared by both objectives."""
    cpu = not torch.cuda.is_available()
    return dict(
        output_dir=output_dir, num_train_epochs=p.epochs, max_steps=p.max_steps or -1,
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size, gradient_accumulation_steps=p.grad_accum,
        max_length=p.max_length,
        # transformers 5: a warmup_steps below 1 is a share of all steps (rounded up)
        warmup_steps=p.warmup_ratio if p.warmup_ratio else p.warmup_steps, weight_decay=p.weight_decay,
        adam_beta2=p.adam_beta2, max_grad_norm=p.max_grad_norm, **_final_rate(p),
        seed=p.seed, data_seed=p.seed, full_determinism=True,
        use_cpu=cpu, bf16=p.precision == "bf16", fp16=False, gradient_checkpointing=False,
        dataloader_num_workers=0, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=False,
    )


def sft_config(p: Train, output_dir: str):
    from trl import SFTConfig

    return SFTConfig(**_args(p, output_dir), completion_only_loss=True, packing=False)


def dpo_config(p: Train, output_dir: str):
    """DPO (sigmoid loss, beta = train.dpo_beta); with train.nll_weight > 0 plus that weight times the mean
    NLL of the chosen completion's tokens (TRL 1.16 has no `rpo_alpha`: its loss types `sigmoid` + `sft`)."""
    from trl import DPOConfig

    nll = p.nll_weight
    return DPOConfig(**_args(p, output_dir), beta=p.dpo_beta,
                     loss_type=["sigmoid", "sft"] if nll else ["sigmoid"],
                     loss_weights=[1.0, nll] if nll else None)


def lora_config(p: Train):
    from peft import LoraConfig

    return LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules="all-linear")


def sft_example(tok, record) -> dict:
    """An SFT record as token ids, with the loss on the completion only. The ids come from backends.encoding,
    as at inference: a special-token string inside a judged text stays plain text (TRL's own tokenization
    would read it as a control token and teach the judge a forged turn). The completion starts where the
    prompt and the whole conversation diverge, as TRL counts it (its common_prefix_length)."""
    from trl.data_utils import common_prefix_length

    prompt = chat_ids(tok, record["prompt"])
    full = chat_ids(tok, record["prompt"] + record["completion"], generation_prompt=False)
    n = common_prefix_length(prompt, full)
    return {"input_ids": full, "completion_mask": [0] * n + [1] * (len(full) - n)}


def preference_example(tok, record) -> dict:
    """A preference record as the ids TRL's DPO collator takes (prompt, chosen and rejected continuations)."""
    from trl.data_utils import common_prefix_length

    prompt = chat_ids(tok, record["prompt"])
    chosen = chat_ids(tok, record["prompt"] + record["chosen"], generation_prompt=False)
    rejected = chat_ids(tok, record["prompt"] + record["rejected"], generation_prompt=False)
    n = min(common_prefix_length(prompt, chosen), common_prefix_length(prompt, rejected))
    return {"prompt_ids": prompt[:n], "chosen_ids": chosen[n:], "rejected_ids": rejected[n:]}


def encode(tok, record) -> dict:
    return preference_example(tok, record) if "chosen" in record else sft_example(tok, record)


def n_tokens(example: dict) -> int:
    """The longest sequence an encoded example puts through the model."""
    if "input_ids" in example:
        return len(example["input_ids"])
    return len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))


# Why an objective has nothing to train on, by train.objective.
NO_RECORDS = {
    "sft": "no training records: the filter kept no judgments, so there is nothing to train on; use "
           "judge.mode 'constrained', more judge.samples, or a stronger seed",
    "dpo": "no preference pairs: DPO needs a correct and a wrong (or unparseable) judgment of the same pair "
           "and order, and no (pair, order) had both; set judge.adaptive false (adaptive sampling stops at "
           "the first correct judgment), raise judge.samples, or train with train.objective sft"}


def _check_records(first, p: Train, source="the training records") -> None:
    """Refuse an objective's records when there are none (`first` is None) or the first lacks its fields."""
    if first is None:
        raise InputError(source, NO_RECORDS[p.objective])
    need = ("prompt", "chosen", "rejected") if p.objective == "dpo" else ("prompt", "completion")
    missing = [k for k in need if k not in first]
    if missing:
        raise InputError(source, f"train.objective {p.objective!r} needs records with {', '.join(need)}; the "
                                 f"first record lacks {', '.join(missing)}", line=1)


def _records(records):
    """The training records one at a time: those of a list, or of a JSONL file read line by line."""
    return iter(records) if isinstance(records, (list, tuple)) else iter_jsonl(records)


# The columns of an encoded example (encode), as the Arrow dataset stores them.
def _features(objective: str):
    from datasets import Features, List, Value

    cols = ("prompt_ids", "chosen_ids", "rejected_ids") if objective == "dpo" else ("input_ids",
                                                                                     "completion_mask")
    return Features({c: List(Value("int64")) for c in cols})


WRITER_BATCH = 64


def encoded_dataset(records, tok, p: Train, folder) -> tuple:
    """(the training set, records read): the records encoded one at a time and those that fit
    train.max_length written to an Arrow file in `folder`, which the dataset memory-maps. Neither the records
    nor their token ids are ever all in memory: the peak is one writer batch (WRITER_BATCH examples),
    whatever the data's size."""
    from datasets import Dataset

    seen = [0]

    def examples():
        for r in _records(records):
            seen[0] += 1
            e = encode(tok, r)
            if n_tokens(e) <= p.max_length:
                yield e

    # a fixed fingerprint: the folder is new for every run, so nothing is reused, and hashing the generator
    # would pickle the tokenizer and the records; the writer holds WRITER_BATCH examples at a time
    ds = Dataset.from_generator(examples, features=_features(p.objective), cache_dir=str(folder),
                                fingerprint=f"selftaught-train-{p.objective}", writer_batch_size=WRITER_BATCH)
    return ds, seen[0]


def train(records, init_dir, out_dir: Path | None, p: Train, threads: int = 0,
          trust_remote_code=False, callbacks=()) -> dict:
    """Fine-tune `init_dir` on `records` (SFT records, or preference records with train.objective dpo: a list,
    or the path of their JSONL file, read one record at a time); save the result (full model or LoRA
    adapter) in `out_dir`. The records are encoded into an Arrow file beside `out_dir` (a temporary folder
    without one) that training reads memory-mapped (`encoded_dataset`). Under `accelerate launch` every rank
    calls this; the main process passes `out_dir` and alone writes it, the others pass None. `callbacks` go
    to the trainer as they are (`live.callback`: every step's loss, learning rate and gradient norm logged
    through DVCLive). With train.select validation, the checkpoints before the last are saved in
    candidates_dir(out_dir) as step_<n> (main process; selection.py judges them)."""
    check_precision(p)
    _check_records(next(_records(records), None), p,
                   records if not isinstance(records, (list, tuple)) else "the training records")
    set_determinism(threads)
    beside = out_dir.parent if out_dir is not None else None
    with tempfile.TemporaryDirectory(prefix=".dataset.", dir=beside) as folder:
        return _train(records, init_dir, out_dir, p, trust_remote_code, list(callbacks), Path(folder))


def _train(records, init_dir, out_dir, p, trust_remote_code, callbacks, folder) -> dict:
    model, tok = load_model(init_dir, "float32", trust_remote_code=trust_remote_code)
    model.train()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    ds, n_records = encoded_dataset(records, tok, p, folder)
    if not len(ds):
        raise ParamError("train.max_length", f"all {n_records} training records are longer than "
                                             f"{p.max_length} tokens: nothing to train on")
    # only the main process creates the trainer's output dir (save_strategy "no" leaves it empty)
    work = str(out_dir.parent / ".trainer") if out_dir is not None else tempfile.gettempdir()
    peft = lora_config(p) if p.method == "lora" else None
    if p.objective == "dpo":
        # the reference is the initial checkpoint, loaded as the policy is (LoRA: the adapter switched off)
        ref = None if peft else load_model(init_dir, "float32", trust_remote_code=trust_remote_code)[0]
        trainer = _pretokenized_dpo()(model=model, ref_model=ref, args=dpo_config(p, work), train_dataset=ds,
                                      processing_class=tok, peft_config=peft, callbacks=callbacks)
    else:
        from trl import SFTTrainer

        # input_ids + completion_mask: TRL tokenizes nothing
        trainer = SFTTrainer(model=model, args=sft_config(p, work), train_dataset=ds, processing_class=tok,
                             peft_config=peft, callbacks=callbacks)
    if trainer.args.should_save != (out_dir is not None):
        raise RuntimeError(f"process {trainer.args.process_index} of {trainer.args.world_size}: the main "
                           f"process (and only it) must be given the output directory")
    if p.select == "validation":
        trainer.add_callback(_candidate_saver(trainer, tok, candidates_dir(out_dir) if out_dir is not None
                                              else None, init_dir, p))
    result = trainer.train()
    logs = trainer.state.log_history
    check_finite([h["loss"] for h in logs if "loss" in h] + [result.training_loss], trainer.model)
    save(trainer, tok, out_dir, init_dir, p)
    losses = [round(h["loss"], 5) for h in logs if "loss" in h]
    stats = {"examples": len(ds), "too_long": n_records - len(ds), "steps": trainer.state.global_step,
             "train_loss": round(result.training_loss, 5), "first_loss": losses[0] if losses else None,
             "last_loss": losses[-1] if losses else None, "method": p.method, "init": str(init_dir)}
    if p.objective == "dpo":
        acc = [h["rewards/accuracies"] for h in logs if "rewards/accuracies" in h]
        margins = [h["rewards/margins"] for h in logs if "rewards/margins" in h]
        stats.update(objective="dpo", dpo_beta=p.dpo_beta, nll_weight=p.nll_weight,
                     last_reward_accuracy=round(acc[-1], 5) if acc else None,
                     last_reward_margin=round(margins[-1], 5) if margins else None)
    if trainer.args.world_size > 1:
        stats["processes"] = trainer.args.world_size
    stats["loss_curve"] = losses
    return stats


def candidates_dir(out_dir: Path) -> Path:
    """Where train.select validation keeps the candidate checkpoints of `out_dir`: beside it (the stage's
    `out_dir` is inside its temp folder, so they go with it)."""
    return out_dir.parent / f".{out_dir.name}.candidates"


def _candidate_saver(trainer, tok, folder: Path | None, init_dir, p: Train):
    """A callback that saves a candidate checkpoint every train.save_steps optimizer steps (0: at the end of
    each epoch), except at the last step, whose checkpoint the stage writes anyway. Every rank runs it (FSDP
    gathers the weights from all); only the main process, which has `folder`, writes."""
    from transformers import TrainerCallback

    def keep(step: int, state) -> None:
        if step < state.max_steps:
            save(trainer, tok, folder / f"step_{step}" if folder is not None else None, init_dir, p)

    class SaveCandidates(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if p.save_steps and state.global_step % p.save_steps == 0:
                keep(state.global_step, state)

        def on_epoch_end(self, args, state, control, **kwargs):
            if not p.save_steps:
                keep(state.global_step, state)

    return SaveCandidates()


def _pretokenized_dpo():
    """TRL's DPOTrainer on a dataset already in its collator's form (prompt_ids, chosen_ids, rejected_ids; see
    preference_example): its own tokenization step, which would read special-token strings in judged texts as
    control tokens, is skipped. Our records are already filtered to train.max_length."""
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    return PretokenizedDPOTrainer


def check_finite(losses, model) -> None:
    """Refuse a run whose loss or trained weights went non-finite (NaN/inf): nothing is saved, so DVC caches
    no broken checkpoint; the error names the params that usually cause it."""
    bad_loss = next((x for x in losses if not math.isfinite(x)), None)
    bad_param = next((n for n, t in model.named_parameters()
                      if t.requires_grad and not torch.isfinite(t).all()), None)
    if bad_loss is not None or bad_param is not None:
        what = (f"the training loss became {bad_loss}" if bad_loss is not None
                else f"weight {bad_param} became non-finite")
        raise ParamError("train.learning_rate", f"{what}: the run diverged and no checkpoint was written; "
                                                "lower train.learning_rate (or check train.precision)")


def save(trainer, tok, out_dir: Path | None, init_dir, p: Train) -> None:
    """Write the trained judge to `out_dir` from the main process only. Every rank must call this: under FSDP
    the full weights are gathered from all ranks first (FULL_STATE_DICT); with one process or DDP the main
    process holds them all. `Trainer.save_model` is not used: it also pickles the training arguments into the
    checkpoint."""
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if out_dir is None:
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    try:
        model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
        tok.save_pretrained(out_dir)
    except OSError:
        raise
    except Exception as e:    # safetensors reports a full disk as its own error: made the OSError it is
        if "no space left" in str(e).lower():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir)) from None
        raise
    if p.method == "lora":     # the adapter points at the checkpoint it was trained on, by repo path
        cfg_path = out_dir / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = str(init_dir)
        # peft writes a set: its order varies with the hash seed
        if isinstance(cfg.get("target_modules"), list):
            cfg["target_modules"] = sorted(cfg["target_modules"])
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
