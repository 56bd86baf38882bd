"""A tiny randomly initialised Llama with a byte-level BPE tokenizer and a ChatML template, made in
seconds with no download: the end-to-end tests run the real pipeline on it."""

from pathlib import Path

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")

# The tiny profile: the real DAG, scaled so each stage takes seconds on the tiny model (params overrides).
TINY = {
    "data": {"per_iteration": 6, "eval_per_benchmark": 4},
    "generation": {"dtype": "float32", "batch_size": 8, "max_judged_chars": 300},
    "synthesize": {"max_new_tokens": 12, "instruction_max_new_tokens": 12},
    "judge": {"max_new_tokens": 8},
    "train": {"epochs": 1, "batch_size": 4, "max_length": 2048},
    "evaluate": {"max_new_tokens": 8},
}

CORPUS = ["the judge reads two responses and writes which one is better",
          "write a short answer to the instruction about the topic that was asked",
          "a good response is helpful correct and on topic"] * 20


def make_tiny_model(out_dir, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, corpus=None, vocab_size=320) -> Path:
    """Save the model and tokenizer in `out_dir`; the defaults make a ~120 KB checkpoint (the size knobs are
    for benchmarks that need a bigger one). `corpus` (texts) and `vocab_size`: what the tokenizer is trained
    on, by default a few sentences and 320 tokens (scale runs give it their texts, for English-like token
    counts of ~4 characters a token)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(corpus or CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                      num_key_value_heads=num_key_value_heads, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
