"""A bounded LRU of prompt states (KV and last-position logits), so a prompt is prefilled once."""

from __future__ import annotations


class PromptCache:
    """LRU of prompt states (KV per layer of the prompt's real tokens, last-position logits), bounded in
    bytes: the samples of one judged item, its verdict scoring and its later adaptive rounds prefill it
    once."""

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()

    @staticmethod
    def size(state) -> int:
        kv, logits = state
        return (sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
                + logits.numel() * 4)

    def get(self, key):
        st = self.items.get(key)
        if st is not None:
            self.items.move_to_end(key)
        return st

    def put(self, key, state):
        n = self.size(state)
        if n > self.max_bytes or key in self.items:
            return
        while self.bytes + n > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= self.size(old)
        self.items[key] = state
        self.bytes += n
