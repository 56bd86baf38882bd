"""The synthesis prompts (synthesize.pairs): the responder's (synthesize.answer_template), the request for x'
(two_step: synthesize.modify_template) and the one request for x' and its answer (rewrite: the paper's
construction, synthesize.rewrite_template), with their worked examples shown first as earlier chat turns
(synthesize.modify_shots of them). A rewrite template's `reply` is the layout of the reply it asks for: it
renders the worked examples' answers, and its labels are what selftaught.synthesize.parse_rewrite reads."""

from __future__ import annotations

from ..core.errors import ParamError
from .judge import truncate
from .loader import TemplateError, load_param_template, load_template


def answer_messages(instruction: str, template=None) -> list[dict]:
    """The responder's messages for an instruction (default template: the instruction as the user's turn)."""
    return load_template(template, "answer").messages(instruction=instruction)


def _few_shot(t, shots: int, turns, **fields) -> list[dict]:
    """`shots` worked examples of template `t` as earlier turns (`turns(example)`: its user fields and the
    assistant's reply), then the request for `fields`; the system message (if any) once, first. A template
    with fewer examples than `shots` is refused."""
    if shots > len(t.examples):
        raise TemplateError(f"{t.path} has {len(t.examples)} worked examples, "
                            f"fewer than the {shots} asked for")
    msgs = []
    for i, example in enumerate(t.examples[:shots]):
        user, reply = turns(example)
        msgs += [*t.messages(system=i == 0, **user), {"role": "assistant", "content": reply}]
    return msgs + t.messages(system=not msgs, **fields)


def modify_messages(instruction: str, shots: int = 0, template=None) -> list[dict]:
    """The request for x'. With `shots` > 0, that many worked examples of the template come first as earlier
    turns (a template with fewer examples is refused)."""
    return _few_shot(load_template(template, "modify"), shots, lambda e: ({"instruction": e[0]}, e[1]),
                     instruction=instruction)


def rewrite_answer_text(new_instruction: str, new_answer: str, template=None) -> str:
    """The reply a rewrite template asks for (its `reply` layout)."""
    return load_template(template, "rewrite").reply_text(new_instruction, new_answer)


def rewrite_messages(instruction: str, answer: str, shots: int = 0, max_chars: int = 100_000,
                     template=None) -> list[dict]:
    """The one request for x' and its answer, given x and its good answer (each cut to `max_chars`). With
    `shots` > 0, that many worked examples come first as earlier turns, answered in the template's `reply`
    layout (a template with fewer examples is refused)."""
    t = load_template(template, "rewrite")
    return _few_shot(t, shots, lambda e: ({"instruction": e[0], "answer": e[1]}, t.reply_text(e[2], e[3])),
                     instruction=truncate(instruction, max_chars), answer=truncate(answer, max_chars))


# Worked examples of the default templates (templates/modify.yaml, templates/rewrite.yaml).
MODIFY_EXAMPLES = load_template(None, "modify").examples
REWRITE_EXAMPLES = load_template(None, "rewrite").examples


def check_synthesis_templates(params) -> None:
    """Load synthesize.modify_template, synthesize.answer_template and synthesize.rewrite_template (a
    ParamError naming the key when one cannot be used) and check that the modify template (and with
    synthesize.pairs rewrite, the rewrite template) has synthesize.modify_shots worked examples."""
    p = params.synthesize
    modify = load_param_template(params, "synthesize.modify_template", "modify")
    load_param_template(params, "synthesize.answer_template", "answer")
    rewrite = load_param_template(params, "synthesize.rewrite_template", "rewrite")
    for t in (modify, rewrite) if p.pairs == "rewrite" else (modify,):
        if p.modify_shots > len(t.examples):
            raise ParamError("synthesize.modify_shots", f"{t.path} has {len(t.examples)} worked examples, "
                                                        f"fewer than {p.modify_shots}")
