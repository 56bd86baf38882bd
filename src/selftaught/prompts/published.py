"""Published prompt files, read as they are distributed, so a user can point a template key at them:

- a plain-text `.prompt` file with str.format placeholders (the released Self-Taught Evaluators prompts):
  a judge prompt uses {input}, {generation} and {generation2}; a rewrite prompt {input} and {generation}, and
  ends by stating its reply layout (the lines after its last "format:" line, `<...>` where each part goes);
- a FastChat judge-prompt record file (`.jsonl`, one JSON record per line: name, system_prompt,
  prompt_template with {question}, {answer_a} and {answer_b}, output_format), the record chosen by name.

Each becomes the mapping a YAML template file holds (prompts/__init__.py), checked the same way: placeholders
become Jinja2 fields, the rest of the text is kept verbatim (Jinja2 syntax in it stays literal), and the
bracketed lines that delimit the judged texts ("[User Question]", ...) become the markers neutralised inside
them. A prompt whose verdicts are written [[A]]/[[B]] asks for the bracket verdict format."""

from __future__ import annotations

import json
import re
import string

PROMPT_FIELDS = {"judge": {"input": "instruction", "generation": "a", "generation2": "b"},
                 "rewrite": {"input": "instruction", "generation": "answer"}}
FASTCHAT_FIELDS = {"question": "instruction", "answer_a": "a", "answer_b": "b"}
_JINJA_SYNTAX = re.compile(r"\{[{%#]|[}%#]\}")
_PLACEHOLDER = re.compile(r"^\s*<[^<>\n]+>\s*$")


class PublishedError(ValueError):
    """A published prompt file that cannot be read as a template of its kind."""


def _literal(text: str) -> str:
    """Text kept verbatim inside a Jinja2 template."""
    return "{% raw %}" + text + "{% endraw %}" if _JINJA_SYNTAX.search(text) else text


def to_jinja(fmt: str, fields: dict) -> str:
    """A str.format text as a Jinja2 template: its placeholders (renamed by `fields`) become fields."""
    out = []
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as e:
        raise PublishedError(f"not a str.format template ({e})") from None
    for literal, name, spec, conv in parsed:
        out.append(_literal(literal))
        if name is None:
            continue
        if name not in fields or spec or conv:
            raise PublishedError(f"unknown placeholder {{{name}}}: this kind has {sorted(fields)}")
        out.append("{{ " + fields[name] + " }}")
    return "".join(out)


def markers(text: str) -> list:
    """The bracketed lines of a prompt that delimit its data ("[User Question]", "[The End of ...]")."""
    lines = {line.strip() for line in text.splitlines()}
    return sorted(m for m in lines if len(m) > 2 and m.startswith("[") and m.endswith("]") and "{" not in m
                  and not re.fullmatch(r"\[\[[A-Z]\]\]", m))


def reply_layout(text: str) -> str:
    """The reply layout a rewrite prompt states: its lines after the last "format:" line, the first `<...>`
    line standing for the new instruction and the second for its answer (a Jinja2 reply template)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.rstrip().lower().endswith("format:")]
    if not starts:
        raise PublishedError("no reply layout: the prompt has no line ending in 'format:'")
    body = "\n".join(lines[starts[-1] + 1:]).strip("\n")
    slots = [i for i, line in enumerate(body.split("\n")) if _PLACEHOLDER.match(line)]
    if len(slots) != 2:
        raise PublishedError(f"the reply layout must have two <...> lines (new instruction, its answer); "
                             f"it has {len(slots)}")
    rows = body.split("\n")
    for i, name in zip(slots, ("new_instruction", "new_answer")):
        rows[i] = "\0" + name + "\0"
    parts = "\n".join(rows).split("\0")
    return "".join("{{ " + p + " }}" if k % 2 else _literal(p) for k, p in enumerate(parts))


def from_prompt_file(text: str, kind: str) -> dict:
    """The template mapping of a plain-text `.prompt` file of `kind` (judge or rewrite)."""
    if kind not in PROMPT_FIELDS:
        raise PublishedError(f"a .prompt file can hold a judge or rewrite prompt, not a {kind} prompt")
    raw = {"kind": kind, "user": to_jinja(text, PROMPT_FIELDS[kind]), "markers": markers(text)}
    if kind == "judge" and "[[A]]" in text and "[[B]]" in text:
        raw["verdict_format"] = "bracket"
    if kind == "rewrite":
        raw["reply"] = reply_layout(text)
    return raw


def from_fastchat(text: str, name: str) -> dict:
    """The judge template mapping of the record called `name` in a FastChat judge-prompt record file."""
    if not name:
        raise PublishedError("a judge-prompt record file needs the record's name (judge.template_record)")
    names = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise PublishedError(f"line {n}: not JSON ({e})") from None
        if not isinstance(rec, dict):
            raise PublishedError(f"line {n}: expected a JSON object")
        names.append(rec.get("name"))
        if rec.get("name") != name:
            continue
        for key in ("system_prompt", "prompt_template"):
            if not isinstance(rec.get(key), str):
                raise PublishedError(f"line {n}: field '{key}' must be a string")
        raw = {"kind": "judge", "user": to_jinja(rec["prompt_template"], FASTCHAT_FIELDS),
               "markers": markers(rec["prompt_template"])}
        if rec["system_prompt"]:
            raw["system"] = _literal(rec["system_prompt"])
        if rec.get("output_format") in ("[[A]]", "[[A]]/[[B]]"):
            raw["verdict_format"] = "bracket"
        return raw
    raise PublishedError(f"no record named {name!r} (records: {', '.join(map(str, names[:12]))})")
