"""The judge prompt and its token budget: JudgePrompt renders a judge template (judge.template) with the
judged texts cut to generation.max_judged_chars characters, then, given a token counter, to
generation.max_prompt_tokens tokens (fit_fields: the judged texts are cut longest first, never the
instructions or the system prompt). Also the texts a judgment is recorded in (judgment_text, likelihood_text)
and likelihood mode's neutral request.

Likelihood mode scores a response as log p(response | the answer prompt of the instruction) - log p(response |
the answer prompt of a neutral request): both requests are rendered by the default answer template
(answer_messages), so the neutral request is a key of that template (`neutral` in templates/answer.yaml), not
a file of its own nor a key of the judge template, which likelihood mode never renders: the request and the
prompt it is wrapped in change together, in one file (a dep of the stages that score likelihoods)."""

from __future__ import annotations

from ..core.errors import ParamError
from ..verdict import VerdictFormat, verdict_format
from .loader import TemplateError, load_param_template, load_template

VERDICT_PREFIX = verdict_format("last_line").prefix


def neutral_request(template=None) -> str:
    """Likelihood mode's neutral request: the `neutral` key of the answer template (default: ours)."""
    t = load_template(template, "answer")
    if t.neutral is None:
        raise TemplateError(f"{t.path} has no `neutral` request (likelihood mode needs one)")
    return t.neutral


# likelihood mode: a response's score is log p(response | the instruction) - log p(response | this request),
# so what the response says anyway (fluent filler, a generic answer) cancels and what the instruction adds
# remains
NEUTRAL_INSTRUCTION = neutral_request()


def truncate(text: str, max_chars: int) -> str:
    """Cut a judged text to `max_chars`, marking the cut, so prompts stay within the model's budget
    (0 or None: no cut, generation.max_judged_chars 0)."""
    return text if not max_chars else _cut(text, max_chars)


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


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
        return render({k: _cut(v, c) for k, v in fields.items()})

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
    """The JudgePrompt of the params (judge.template, judge.verdict_format, generation.max_judged_chars); with
    a backend that has a tokenizer, prompts are fitted to generation.max_prompt_tokens (see
    JudgePrompt.fit_to: stages build the prompt before loading the model, so a bad template fails fast, then
    fit it)."""
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
