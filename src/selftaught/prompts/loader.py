"""Loading and checking prompt template files (the format is described in prompts/__init__.py): a file is read
once per modification time, checked against its kind (keys, the fields its Jinja2 text uses, the form of its
worked examples and reply layout) and returned as a PromptTemplate that renders chat messages in a sandbox,
with the template's markers neutralised inside every data field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ..core.errors import ParamError
from . import published

TEMPLATES = Path(__file__).parents[1] / "templates"
# The data fields each kind's `user` (and `system`) text must use, all of them and no others.
FIELDS = {"judge": ("instruction", "a", "b"), "modify": ("instruction",), "answer": ("instruction",),
          "rewrite": ("instruction", "answer"), "category": ("instruction", "categories")}
DEFAULTS = {kind: TEMPLATES / f"{kind}.yaml" for kind in FIELDS}
# The strings of one worked example, by kind (the kinds that may have examples).
EXAMPLE_FIELDS = {"modify": ("instruction", "new instruction"),
                  "rewrite": ("instruction", "answer", "new instruction", "new answer")}
# A rewrite template's `reply`: the reply layout, with the new instruction before its answer: two labelled
# lines, each label ending in a colon (read leniently), or any blocks of text around the two fields.
REPLY_FIELDS = ("new_instruction", "new_answer")
_REPLY_BLOCKS = re.compile(r"(?P<before>.*?)\{\{-?\s*new_instruction\s*-?\}\}(?P<between>.*?)"
                           r"\{\{-?\s*new_answer\s*-?\}\}(?P<after>.*)", re.DOTALL)
_REPLY = re.compile(r"(?P<l1>[^\n{}]*?:)[ \t]*\{\{-?\s*new_instruction\s*-?\}\}\n"
                    r"(?P<l2>[^\n{}]*?:)[ \t]*\{\{-?\s*new_answer\s*-?\}\}")
_KEYS = {"kind", "system", "user", "markers", "verdict_format", "examples", "reply", "neutral"}


class TemplateError(ValueError):
    """A template file that cannot be used (stages report it as a ParamError naming the key)."""


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


def _escape_field(value, markers):
    """A data field with its markers neutralised: a string, or a list of strings (e.g. the categories)."""
    if isinstance(value, str):
        return escape_markers(value, markers)
    return [escape_markers(v, markers) for v in value]


@lru_cache(maxsize=None)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True,
                                         autoescape=False)


@dataclass(frozen=True)
class PromptTemplate:
    path: str
    kind: str
    user: str
    system: str | None = None
    markers: tuple = ()
    verdict_format: str | None = None
    examples: tuple = ()
    reply: str | None = None          # rewrite only: the reply layout (fields new_instruction, new_answer)
    neutral: str | None = None        # answer only: likelihood mode's neutral request
    _compiled: dict = field(default_factory=dict, compare=False, repr=False)

    def _render(self, source, fields) -> str:
        if source not in self._compiled:
            self._compiled[source] = _env().from_string(source)
        return self._compiled[source].render(**fields)

    def messages(self, system: bool = True, **fields) -> list[dict]:
        """The chat messages for these data fields (markers neutralised inside them); `system`: with the
        system message, when the template has one."""
        fields = {k: _escape_field(v, self.markers) for k, v in fields.items()}
        out = [{"role": "system", "content": self._render(self.system, fields)}] \
            if system and self.system is not None else []
        return out + [{"role": "user", "content": self._render(self.user, fields)}]

    def reply_text(self, new_instruction: str, new_answer: str) -> str:
        """A reply in the layout of `reply` (rewrite templates): the worked examples' assistant turns."""
        return self._render(self.reply, {"new_instruction": new_instruction, "new_answer": new_answer})

    @property
    def reply_labels(self) -> tuple[str, str] | None:
        """The labels of a two-line reply, e.g. ("NEW INSTRUCTION:", "NEW ANSWER:"), or None for a block
        layout (rewrite templates)."""
        m = _REPLY.fullmatch(self.reply)
        return (m.group("l1").strip(), m.group("l2").strip()) if m else None

    @property
    def reply_blocks(self) -> tuple[str, str, str]:
        """The reply layout's text before the new instruction, between it and the answer, and after."""
        m = _REPLY_BLOCKS.fullmatch(self._render(self.reply, {"new_instruction": "{{ new_instruction }}",
                                                              "new_answer": "{{ new_answer }}"}))
        return m.group("before"), m.group("between"), m.group("after")


def _fields_used(raw, key, kind, fields) -> set:
    from jinja2 import TemplateSyntaxError, meta

    try:
        names = meta.find_undeclared_variables(_env().parse(raw[key]))
    except TemplateSyntaxError as e:
        raise TemplateError(f"`{key}` line {e.lineno}: {e.message}") from None
    if names - set(fields):
        raise TemplateError(f"`{key}` uses unknown fields {sorted(names - set(fields))}; "
                            f"a {kind} template{'' if key != 'reply' else ' reply'} has {list(fields)}")
    return names


def _check(raw, path) -> PromptTemplate:
    if not isinstance(raw, dict):
        raise TemplateError("expected a mapping with `kind` and `user`")
    unknown = set(raw) - _KEYS
    if unknown:
        raise TemplateError(f"unknown keys {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in FIELDS:
        raise TemplateError(f"`kind` must be one of {list(FIELDS)}, got {kind!r}")
    for key in ("user", "system", "reply", "neutral"):
        if key in raw and not isinstance(raw[key], str) or key == "user" and not raw.get("user"):
            raise TemplateError(f"`{key}` must be a non-empty string")
    used = set()
    for key in ("user", "system"):
        if key in raw:
            used |= _fields_used(raw, key, kind, FIELDS[kind])
    if set(FIELDS[kind]) - used:
        raise TemplateError(f"the template never uses the fields {sorted(set(FIELDS[kind]) - used)}")
    markers = raw.get("markers", [])
    if not isinstance(markers, list) or not all(isinstance(m, str) and len(m) >= 2 for m in markers):
        raise TemplateError("`markers` must be a list of strings of 2 or more characters")
    vf = raw.get("verdict_format")
    if vf is not None and (kind != "judge" or vf not in ("last_line", "bracket")):
        raise TemplateError("`verdict_format` (judge templates only) must be last_line or bracket")
    ex = raw.get("examples", [])
    size = len(EXAMPLE_FIELDS.get(kind, ()))
    if ex and kind not in EXAMPLE_FIELDS or not isinstance(ex, list) or not all(
            isinstance(e, list) and len(e) == size and all(isinstance(s, str) and s for s in e) for e in ex):
        raise TemplateError("`examples` (modify and rewrite templates only) must be a list of ["
                            + ", ".join(EXAMPLE_FIELDS.get(kind, EXAMPLE_FIELDS["modify"])) + "]")
    reply = raw.get("reply")
    if (reply is not None) != (kind == "rewrite"):
        raise TemplateError("`reply` (the reply layout) is required in rewrite templates and only there")
    if reply is not None:
        _fields_used(raw, "reply", kind, REPLY_FIELDS)
        m = _REPLY.fullmatch(reply)
        blocks = _REPLY_BLOCKS.fullmatch(reply)
        if m is None and (blocks is None or not blocks.group("before").strip()
                          or not blocks.group("between").strip()):
            raise TemplateError("`reply` must be two lines, `<label>: {{ new_instruction }}` then "
                                "`<label>: {{ new_answer }}`, or text before each of the two fields")
        if m and (not m.group("l1").strip(" \t:") or not m.group("l2").strip(" \t:")):
            raise TemplateError("`reply` must be two lines, `<label>: {{ new_instruction }}` then "
                                "`<label>: {{ new_answer }}`")
        missing = [lab.strip() for lab in (m.group("l1"), m.group("l2")) if lab.strip() not in raw["user"]] \
            if m else []
        if missing:
            raise TemplateError(f"`user` must state the reply layout: it never names the labels {missing}")
    neutral = raw.get("neutral")
    if neutral is not None and (kind != "answer" or not neutral.strip()):
        raise TemplateError("`neutral` (answer templates only) must be a non-empty string")
    t = PromptTemplate(str(path), kind, raw["user"], raw.get("system"), tuple(markers), vf,
                       tuple(tuple(e) for e in ex), reply, neutral)
    _trial_render(t)
    return t


def _trial_render(t: PromptTemplate) -> None:
    """Render the template once with sample values of its fields: a text that uses a field in a way its value
    does not support (`{{ a.text }}`: a judged text is a string) fails here, when the file is loaded, not in a
    stage after its model has loaded."""
    from jinja2 import TemplateError as JinjaError

    sample = {f: "sample text of the field" for f in FIELDS[t.kind]}
    if t.kind == "category":
        sample["categories"] = ["first", "second"]
    try:
        t.messages(**sample)
        if t.reply is not None:
            t.reply_text("sample instruction", "sample answer")
    except (JinjaError, TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise TemplateError(f"`user` or `system` cannot be rendered with its fields {list(FIELDS[t.kind])} "
                            f"(each a text{', categories a list' if t.kind == 'category' else ''}): "
                            f"{type(e).__name__}: {e}") from None


@lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int, kind: str, record: str) -> PromptTemplate:
    try:
        text = Path(path).read_text(encoding="utf-8")
        if path.endswith(".prompt"):           # a published plain-text prompt (published.py)
            raw = published.from_prompt_file(text, kind)
        elif path.endswith(".jsonl"):          # a FastChat judge-prompt record file
            raw = published.from_fastchat(text, record)
        else:
            raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        raise TemplateError(f"{path} is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except published.PublishedError as e:
        raise TemplateError(f"{path}: {e}") from None
    try:
        return _check(raw, path)
    except TemplateError as e:
        raise TemplateError(f"{path}: {e}") from None


def load_template(path, kind: str, record: str = "") -> PromptTemplate:
    """The template file at `path` (a PromptTemplate passes through; None is our default), which must be of
    `kind`: a YAML template, a published `.prompt` file, or the record named `record` of a FastChat
    judge-prompt `.jsonl` file."""
    if isinstance(path, PromptTemplate):
        t = path
    else:
        path = Path(path) if path else DEFAULTS[kind]
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as e:
            raise TemplateError(f"cannot read {path} ({e.strerror})") from None
        t = _load(str(path), mtime, kind, record)
    if t.kind != kind:
        raise TemplateError(f"{t.path} is a {t.kind} template, not a {kind} template")
    return t


def load_param_template(params, key: str, kind: str) -> PromptTemplate:
    """load_template for the params key `section.name` (e.g. judge.template); errors name the key."""
    section, name = key.split(".")
    record = params.judge.template_record if key == "judge.template" else ""
    try:
        return load_template(getattr(getattr(params, section), name), kind, record)
    except TemplateError as e:
        raise ParamError(key, str(e)) from None
