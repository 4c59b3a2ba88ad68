"""The exported chat template: the run's prompt in front of the conversation when the request asks for its task.

Engines pass `chat_template_kwargs` through to the template (transformers serve, vLLM, SGLang), so the task travels
as the template variable `promot_task`: absent (or null) renders the model's own template, i.e. the bare model as
`--no-prompt`; a known name puts that prompt's token string where training put the prompt - right after the
rendered text's leading BOS, or first when it has none (or the run predates that rule); an unknown name raises (an error, never a silent bare answer). A message whose text holds a prompt
token's spelling also raises, so user text never becomes a prompt.

Runs trained on raw text whose model has no chat template get one that writes the messages' text as is, after the
special tokens the tokenizer itself adds (BOS), which is the token sequence `promot generate` feeds the model.
"""
from __future__ import annotations

import json

MARKER = "<|promot:"
"""Every prompt token is spelled `<|promot:TASK:i|>`."""


def token_name(task: str, i: int) -> str:
    return f"{MARKER}{task}:{i}|>"


def _lit(text: str) -> str:
    """A Jinja string literal (JSON's quoting is valid Jinja)."""
    return json.dumps(text, ensure_ascii=False)


def raw_template(head: str) -> str:
    """For a model without a chat template: `head` (the special tokens the tokenizer adds itself, e.g. BOS) and the
    messages' text joined by newlines, as a plain-text run saw its input."""
    return ("{%- for message in messages -%}{%- if loop.first %}" + "{{ " + _lit(head) + " }}" + "{% endif -%}"
            "{{ message['content'] }}{%- if not loop.last %}{{ '\\n' }}{% endif -%}{%- endfor -%}")


def promot_template(prefixes: dict[str, str], base: str, after_bos: bool = True) -> str:
    """`base` (the model's own template, or `raw_template`) with the prompt of `promot_task` after its leading
    `bos_token` (`after_bos`; first when the rendering does not start with it), else first. `base` renders into a
    variable first (a block `set`), so where it starts is known before anything is written."""
    known = ", ".join(prefixes) or "none"
    table = "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in prefixes.items()) + "}"
    guard = ("{%- for message in messages -%}{%- if message['content'] is string and " + _lit(MARKER)
             + " in message['content'] -%}{{ raise_exception(" + _lit(f"a message contains '{MARKER}', the spelling of "
                                                                      "a promot prompt token; refused") + ") }}"
             "{%- endif -%}{%- endfor -%}")
    place = ("{%- if " + ("bos_token and promot_body.startswith(bos_token)" if after_bos else "false") + " -%}"
             "{{- bos_token ~ promot_prefixes[promot_task] ~ promot_body[bos_token | length:] -}}"
             "{%- else -%}{{- promot_prefixes[promot_task] ~ promot_body -}}{%- endif -%}")
    pick = ("{%- set promot_prefixes = " + table + " -%}"
            "{%- if promot_task is defined and promot_task is not none -%}"
            "{%- if promot_task not in promot_prefixes -%}{{ raise_exception('unknown promot_task \"' ~ promot_task ~ "
            + _lit(f"\" (this model's tasks: {known})") + ") }}{%- endif -%}" + place +
            "{%- else -%}{{- promot_body -}}{%- endif -%}")
    return guard + "{%- set promot_body %}" + base + "{% endset -%}" + pick  # no strip: the body is the model's own
