"""Our prompts, as template files chosen in params.yaml (judge.template, synthesize.modify_template,
synthesize.answer_template); the defaults are in templates/ next to this file.

A template is a YAML file:

    kind: judge | modify | answer
    system: ...            # optional, Jinja2
    user: ...              # Jinja2; must use every field of its kind
    markers: [...]         # optional: the data delimiters, neutralised inside every field
    verdict_format: ...    # judge only, optional: the verdict format the prompt asks for
    examples: [[x, x'], ...]   # modify only: worked examples, shown first as earlier turns

Judged texts are data: they enter as Jinja2 fields (instruction; a, b for the judge), never concatenated into
the instructions, and the template is rendered in a sandbox. Inside each field the template's markers are
neutralised (a space after their first character) so a judged text cannot close its block; a text without
markers is unchanged. A judge prompt longer than generation.max_prompt_tokens is made to fit by cutting the
judged texts, longest first (`JudgePrompt`): the instructions and the system prompt are never cut. Special-
token strings inside the texts are encoded as plain text (backends/encoding.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ..core.errors import ParamError
from ..verdict import VerdictFormat, verdict_format

TEMPLATES = Path(__file__).parent / "templates"
FIELDS = {"judge": ("instruction", "a", "b"), "modify": ("instruction",), "answer": ("instruction",)}
DEFAULTS = {kind: TEMPLATES / f"{kind}.yaml" for kind in FIELDS}

VERDICT_PREFIX = verdict_format("last_line").prefix

# likelihood mode: a response's score is log p(response | the instruction) - log p(response | this request), so
# what the response says anyway (fluent filler, a generic answer) cancels and what the instruction adds remains
NEUTRAL_INSTRUCTION = "Write a response."


class TemplateError(ValueError):
    """A template file that cannot be used (stages report it as a ParamError naming the key)."""


def truncate(text: str, max_chars: int) -> str:
    """Cut a judged text to `max_chars`, marking the cut, so prompts stay within the model's budget."""
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


def escape_markers(text: str, markers) -> str:
    """`text` with every occurrence of a marker broken by a space after its first character ("<<<" -> "< <<"),
    repeated until none is left. A text without markers is returned unchanged."""
    for _ in range(len(text) + 1):
        hit = [m for m in markers if m in text]
        if not hit:
            return text
        for m in hit:
            text = text.replace(m, m[0] + " " + m[1:])
    raise TemplateError(f"cannot neutralise the markers {list(markers)!r}")


@lru_cache(maxsize=None)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


@dataclass(frozen=True)
class PromptTemplate:
    path: str
    kind: str
    user: str
    system: str | None = None
    markers: tuple = ()
    verdict_format: str | None = None
    examples: tuple = ()
    _compiled: dict = field(default_factory=dict, compare=False, repr=False)

    def _render(self, source, fields) -> str:
        if source not in self._compiled:
            self._compiled[source] = _env().from_string(source)
        return self._compiled[source].render(**fields)

    def messages(self, system: bool = True, **fields) -> list[dict]:
        """The chat messages for these data fields (markers neutralised inside them); `system`: with the
        system message, when the template has one."""
        fields = {k: escape_markers(v, self.markers) for k, v in fields.items()}
        out = [{"role": "system", "content": self._render(self.system, fields)}] \
            if system and self.system is not None else []
        return out + [{"role": "user", "content": self._render(self.user, fields)}]


def _check(raw, path) -> PromptTemplate:
    from jinja2 import TemplateSyntaxError, meta

    if not isinstance(raw, dict):
        raise TemplateError("expected a mapping with `kind` and `user`")
    unknown = set(raw) - {"kind", "system", "user", "markers", "verdict_format", "examples"}
    if unknown:
        raise TemplateError(f"unknown keys {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in FIELDS:
        raise TemplateError(f"`kind` must be one of {list(FIELDS)}, got {kind!r}")
    for key in ("user", "system"):
        if key in raw and not isinstance(raw[key], str) or key == "user" and not raw.get("user"):
            raise TemplateError(f"`{key}` must be a non-empty string")
    used = set()
    for key in ("user", "system"):
        if key in raw:
            try:
                names = meta.find_undeclared_variables(_env().parse(raw[key]))
            except TemplateSyntaxError as e:
                raise TemplateError(f"`{key}` line {e.lineno}: {e.message}") from None
            if names - set(FIELDS[kind]):
                raise TemplateError(f"`{key}` uses unknown fields {sorted(names - set(FIELDS[kind]))}; "
                                    f"a {kind} template has {list(FIELDS[kind])}")
            used |= names
    if set(FIELDS[kind]) - used:
        raise TemplateError(f"the template never uses the fields {sorted(set(FIELDS[kind]) - used)}")
    markers = raw.get("markers", [])
    if not isinstance(markers, list) or not all(isinstance(m, str) and len(m) >= 2 for m in markers):
        raise TemplateError("`markers` must be a list of strings of 2 or more characters")
    vf = raw.get("verdict_format")
    if vf is not None and (kind != "judge" or vf not in ("last_line", "bracket")):
        raise TemplateError("`verdict_format` (judge templates only) must be last_line or bracket")
    ex = raw.get("examples", [])
    if ex and kind != "modify" or not isinstance(ex, list) or not all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(s, str) and s for s in e) for e in ex):
        raise TemplateError("`examples` (modify templates only) must be a list of [instruction, new instruction]")
    return PromptTemplate(str(path), kind, raw["user"], raw.get("system"), tuple(markers), vf,
                          tuple(tuple(e) for e in ex))


@lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int) -> PromptTemplate:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        raise TemplateError(f"{path} is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    try:
        return _check(raw, path)
    except TemplateError as e:
        raise TemplateError(f"{path}: {e}") from None


def load_template(path, kind: str) -> PromptTemplate:
    """The template file at `path` (a PromptTemplate passes through; None is our default), which must be of `kind`."""
    if isinstance(path, PromptTemplate):
        t = path
    else:
        path = Path(path) if path else DEFAULTS[kind]
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as e:
            raise TemplateError(f"cannot read {path} ({e.strerror})") from None
        t = _load(str(path), mtime)
    if t.kind != kind:
        raise TemplateError(f"{t.path} is a {t.kind} template, not a {kind} template")
    return t


def load_param_template(params, key: str, kind: str) -> PromptTemplate:
    """load_template for the params key `section.name` (e.g. judge.template); errors name the key."""
    section, name = key.split(".")
    try:
        return load_template(getattr(getattr(params, section), name), kind)
    except TemplateError as e:
        raise ParamError(key, str(e)) from None


class PromptTooLong(ParamError):
    """A prompt that does not fit its token budget even with its judged texts cut to nothing."""

    def __init__(self, message):
        super().__init__("generation.max_prompt_tokens", message)


def fit_fields(fields: dict, render, count, max_tokens: int):
    """(messages, cut): render(fields), with the fields cut longest-first (each to at most c characters, c as
    large as fits) when the prompt has more than `max_tokens` tokens by `count`. The rest of the prompt
    (instructions, system prompt) is never cut; PromptTooLong when it alone does not fit."""
    msgs = render(fields)
    if count(msgs) <= max_tokens:
        return msgs, False

    def capped(c):
        return render({k: truncate(v, c) for k, v in fields.items()})

    lo, hi = 0, max(len(v) for v in fields.values())
    if count(capped(lo)) > max_tokens:
        raise PromptTooLong(f"the prompt without its judged texts has more than {max_tokens} tokens: raise "
                            f"generation.max_prompt_tokens or shorten the template")
    while hi - lo > 1:                   # largest cap that fits: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(capped(mid)) <= max_tokens else (lo, mid)
    return capped(lo), True


class JudgePrompt:
    """The judge's prompt and verdict format: a judge template, the verdict format, the character cut of each
    judged text and, given a token counter, the token budget the prompt must fit (judged texts cut to fit;
    `cut` counts the distinct prompts that were)."""

    def __init__(self, template=None, verdict=None, max_chars: int = 100_000, count=None, max_tokens=None):
        self.template = load_template(template, "judge")
        declared = self.template.verdict_format
        if verdict is not None and declared is not None and verdict_format(verdict).name != declared:
            raise TemplateError(f"{self.template.path} asks for verdict format {declared!r}, not "
                                f"{verdict_format(verdict).name!r}")
        self.verdict: VerdictFormat = verdict_format(verdict or declared)
        self.max_chars, self.count, self.max_tokens = max_chars, count, max_tokens
        self._cut = set()

    def fit_to(self, backend, max_tokens: int) -> "JudgePrompt":
        """Fit every prompt to `max_tokens` tokens as `backend` counts them (when it has a tokenizer)."""
        if getattr(backend, "tok", None) is not None:
            self.count, self.max_tokens = backend.prompt_length, max_tokens
        return self

    @property
    def cut(self) -> int:
        return len(self._cut)

    def messages(self, instruction: str, a: str, b: str) -> list[dict]:
        fields = {"instruction": truncate(instruction, self.max_chars), "a": truncate(a, self.max_chars),
                  "b": truncate(b, self.max_chars)}
        if self.count is None or self.max_tokens is None:
            return self.template.messages(**fields)
        msgs, cut = fit_fields(fields, lambda f: self.template.messages(**f), self.count, self.max_tokens)
        if cut:
            self._cut.add((instruction, a, b))
        return msgs


def judge_prompt(params, backend=None) -> JudgePrompt:
    """The JudgePrompt of the params (judge.template, judge.verdict_format, generation.max_judged_chars); with a
    backend that has a tokenizer, prompts are fitted to generation.max_prompt_tokens (see JudgePrompt.fit_to:
    stages build the prompt before loading the model, so a bad template fails fast, then fit it)."""
    template = load_param_template(params, "judge.template", "judge")
    try:
        prompt = JudgePrompt(template, params.judge.verdict_format, params.generation.max_judged_chars)
    except TemplateError as e:
        raise ParamError("judge.verdict_format", str(e)) from None
    return prompt.fit_to(backend, params.generation.max_prompt_tokens)


def judge_messages(instruction: str, a: str, b: str, max_chars: int = 100_000, template=None) -> list[dict]:
    """Judge messages with the default (or given) template, each judged text cut to `max_chars`."""
    return JudgePrompt(template, max_chars=max_chars).messages(instruction, a, b)


def ordered(pair, order: int) -> tuple[str, str]:
    """(A, B) for a pair in an order: order 0 puts `chosen` first, order 1 puts it second."""
    return (pair.chosen, pair.rejected) if order == 0 else (pair.rejected, pair.chosen)


def judgment_text(reasoning: str, verdict: str, fmt=None) -> str:
    """The text every training target is written in: reasoning, then the verdict line of the format."""
    return verdict_format(fmt).target(reasoning, verdict)


def likelihood_text(score_a: float, score_b: float, verdict: str | None, fmt=None) -> str:
    """The record of a likelihood-mode judgment (what it measured), ending in the format's verdict line."""
    why = (f"Likelihood scores (log p given the instruction - log p given a neutral request): "
           f"A {score_a:+.3f}, B {score_b:+.3f}.")
    return judgment_text(why, verdict, fmt) if verdict else why


def answer_messages(instruction: str, template=None) -> list[dict]:
    """The responder's messages for an instruction (default template: the instruction as the user's turn)."""
    return load_template(template, "answer").messages(instruction=instruction)


# Worked examples of the default x' writer (templates/modify.yaml), shown before the real request.
MODIFY_EXAMPLES = load_template(None, "modify").examples


def modify_messages(instruction: str, shots: int = 0, template=None) -> list[dict]:
    """The request for x'. With `shots` > 0, that many worked examples of the template come first as earlier
    turns (a template with fewer examples is refused)."""
    t = load_template(template, "modify")
    if shots > len(t.examples):
        raise TemplateError(f"{t.path} has {len(t.examples)} worked examples, fewer than the {shots} asked for")
    msgs = []
    for i, (x, x2) in enumerate(t.examples[:shots]):      # the system message (if any) once, first
        msgs += [*t.messages(system=i == 0, instruction=x), {"role": "assistant", "content": x2}]
    return msgs + t.messages(system=not msgs, instruction=instruction)


def check_synthesis_templates(params) -> None:
    """Load synthesize.modify_template and synthesize.answer_template (a ParamError naming the key when one
    cannot be used) and check that the modify template has synthesize.modify_shots worked examples."""
    modify = load_param_template(params, "synthesize.modify_template", "modify")
    load_param_template(params, "synthesize.answer_template", "answer")
    if params.synthesize.modify_shots > len(modify.examples):
        raise ParamError("synthesize.modify_shots", f"{modify.path} has {len(modify.examples)} worked examples, "
                                                    f"fewer than {params.synthesize.modify_shots}")



# --- synthesize.pairs: rewrite (the paper's construction: one call writes x' and a good answer to x') ---------
# The model sees x and its good answer y, and writes a related but different instruction x' with a good answer
# to x', in two labelled blocks (parsed by selftaught.synthesize.parse_rewrite). The answer to x' is the
# rejected response for x. Ours, written for this purpose.

REWRITE_INSTRUCTION_LABEL = "NEW INSTRUCTION:"
REWRITE_ANSWER_LABEL = "NEW ANSWER:"

REWRITE_TEMPLATE = """Below is an instruction and a good answer to it. Write one new instruction on a closely related topic that asks for something different, so that a good answer to the new instruction would be a poor answer to the original one. Then write a good answer to the new instruction.
Reply in exactly this format and nothing else:
NEW INSTRUCTION: <the new instruction>
NEW ANSWER: <a good answer to the new instruction>

Instruction: {instruction}

Answer: {answer}"""

REWRITE_EXAMPLES = (
    ("Give three tips for keeping houseplants alive in winter.",
     "1. Water less often. 2. Move them near a bright window. 3. Keep them away from cold drafts.",
     "Give three tips for keeping a vegetable garden productive in summer.",
     "1. Water deeply in the early morning. 2. Mulch to keep the soil moist. 3. Pick ripe vegetables often."),
    ("Write a Python function that returns the largest number in a list.",
     "def largest(xs):\n    return max(xs)",
     "Write a Python function that returns the number of even numbers in a list.",
     "def count_even(xs):\n    return sum(1 for x in xs if x % 2 == 0)"),
    ("Why is the sky blue during the day?",
     "Air scatters blue sunlight more than red light, so blue light reaches our eyes from every part of the sky.",
     "Why do the leaves of many trees turn red in autumn?",
     "As days shorten, trees stop making green chlorophyll, and red pigments made from trapped sugars show."),
)


def rewrite_answer_text(new_instruction: str, new_answer: str) -> str:
    """The reply REWRITE_TEMPLATE asks for."""
    return f"{REWRITE_INSTRUCTION_LABEL} {new_instruction}\n{REWRITE_ANSWER_LABEL} {new_answer}"


def rewrite_messages(instruction: str, answer: str, shots: int = 0, max_chars: int = 100_000) -> list[dict]:
    """The one request for x' and its answer, given x and its good answer. With `shots` > 0, that many worked
    examples come first as earlier turns."""
    msgs = []
    for x, y, x2, y2 in REWRITE_EXAMPLES[:shots]:
        msgs += [{"role": "user", "content": REWRITE_TEMPLATE.format(instruction=x, answer=y)},
                 {"role": "assistant", "content": rewrite_answer_text(x2, y2)}]
    user = REWRITE_TEMPLATE.format(instruction=truncate(instruction, max_chars), answer=truncate(answer, max_chars))
    return msgs + [{"role": "user", "content": user}]


# --- data.categories: the generator labels each pool instruction with one category ---------------------------
CATEGORY_TEMPLATE = """Which one of these categories does the instruction below belong to?
Categories: {categories}
Reply with the category name only, nothing else.

Instruction: {instruction}"""


def category_messages(instruction: str, categories, max_chars: int = 100_000) -> list[dict]:
    return [{"role": "user", "content": CATEGORY_TEMPLATE.format(categories=", ".join(categories),
                                                                   instruction=truncate(instruction, max_chars))}]
