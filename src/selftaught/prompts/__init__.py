"""Our prompts, as template files chosen in params.yaml (judge.template, synthesize.modify_template,
synthesize.answer_template, synthesize.rewrite_template, data.category_template); the defaults are in
src/selftaught/templates/. No prompt text lives in Python: this package renders the files.

A template is a YAML file:

    kind: judge | modify | answer | rewrite | category
    system: ...            # optional, Jinja2
    user: ...              # Jinja2; must use every field of its kind, and no other
    markers: [...]         # optional: the data delimiters, neutralised inside every field
    verdict_format: ...    # judge only, optional: the verdict format the prompt asks for
    examples: [...]        # modify: [[x, x'], ...]; rewrite: [[x, y, x', y'], ...]: worked examples, shown
                           # first as earlier turns (synthesize.modify_shots of them)
    reply: ...             # rewrite only, required: the reply layout, `<label>: {{ new_instruction }}` then
                           # `<label>: {{ new_answer }}` on the next line; it renders the examples' answers,
                           # the reply is parsed by its labels, and `user` must name them
    neutral: ...           # answer only, optional: likelihood mode's neutral request (see prompts/judge.py
                           # for why it lives in the answer template)

The fields of each kind: judge: instruction, a, b; modify, answer: instruction; rewrite: instruction, answer;
category: instruction, categories (a list of names, joined by the template).

Judged texts are data: they enter as Jinja2 fields (instruction; a, b for the judge), never concatenated into
the instructions, and the template is rendered in a sandbox. Inside each field the template's markers are
neutralised (a space after their first character) so a judged text cannot close its block; a text without
markers is unchanged. A judge prompt longer than generation.max_prompt_tokens is made to fit by cutting the
judged texts, longest first (`JudgePrompt`): the instructions and the system prompt are never cut. Special-
token strings inside the texts are encoded as plain text (backends/encoding.py).

Modules: loader (reading and checking template files), judge (the judge prompt and its token budget, the
judgment texts, the neutral request), synthesis (answer, modify and rewrite prompts), category (the category
prompt). This file only re-exports them.
"""

from .category import category_messages, check_category_template
from .judge import (
                    NEUTRAL_INSTRUCTION,
                    VERDICT_PREFIX,
                    JudgePrompt,
                    PromptTooLong,
                    fit_fields,
                    judge_messages,
                    judge_prompt,
                    judgment_text,
                    likelihood_text,
                    neutral_request,
                    ordered,
                    truncate,
)
from .loader import (
                    DEFAULTS,
                    FIELDS,
                    TEMPLATES,
                    PromptTemplate,
                    TemplateError,
                    escape_markers,
                    load_param_template,
                    load_template,
)
from .synthesis import (
                    MODIFY_EXAMPLES,
                    REWRITE_EXAMPLES,
                    answer_messages,
                    check_synthesis_templates,
                    modify_messages,
                    rewrite_answer_text,
                    rewrite_messages,
)

__all__ = ["DEFAULTS", "FIELDS", "MODIFY_EXAMPLES", "NEUTRAL_INSTRUCTION", "REWRITE_EXAMPLES", "TEMPLATES",
           "VERDICT_PREFIX", "JudgePrompt", "PromptTemplate", "PromptTooLong", "TemplateError",
           "answer_messages", "category_messages", "check_category_template", "check_synthesis_templates",
           "escape_markers", "fit_fields", "judge_messages", "judge_prompt", "judgment_text",
           "likelihood_text", "load_param_template", "load_template", "modify_messages", "neutral_request",
           "ordered", "rewrite_answer_text", "rewrite_messages", "truncate"]
