"""Records → (input text, target text) examples: templates over named columns, k-shot contexts, chat wrapping."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from promot.data.records import Record
from promot.data.shapes import text
from promot.errors import DataError


@dataclass(frozen=True)
class Example:
    input: str
    """What the model reads (after templating and k-shot context); for a conversation, its rendering up to the
    final assistant turn (with the generation prompt)."""
    target: str
    """What it must produce, without the delimiter; for a conversation, the final assistant turn's content."""
    where: str
    messages: tuple | None = None
    """A conversation: every turn before the final assistant turn ({role, content}; exemplar turns from `shots`
    carry train=False). None for plain text examples."""


class _Fields(dict):
    def __init__(self, record: Record, numbers: bool) -> None:
        super().__init__(record.fields)
        self.where, self.numbers = record.where, numbers

    def __missing__(self, key: str):
        raise DataError(f"{self.where}: field '{key}' is missing (have: {', '.join(sorted(self)) or 'none'})")

    def __getitem__(self, key: str):
        value = super().__getitem__(key)
        if isinstance(value, str) or (self.numbers and isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        return text(value, self.where, key)  # refused: a list, mapping, null (or a number as the bare text)


def _fill(template: str, record: Record, numbers: bool = True) -> str:
    try:
        return template.format_map(_Fields(record, numbers))
    except (ValueError, IndexError, KeyError) as e:
        raise DataError(f"{record.where}: template {template!r} is malformed ({e})") from None


def render(records: list[Record], template: str | None, completion: str) -> list[Example]:
    """Apply the input template (default: the `prompt` field) and the target template to every record. A list,
    mapping or null in a field is refused (never its repr in training text); a number is formatted by a template
    you wrote (`{label}` of 0/1), refused as the bare `prompt` / `completion` text."""
    examples = []
    for r in records:
        text_ = _fill(template or "{prompt}", r, template is not None)
        target = _fill(completion, r, completion != "{completion}")
        if not target.strip():
            raise DataError(f"{r.where}: empty target")
        examples.append(Example(text_, target.strip(), r.where))
    return examples


def conversation_example(messages: list[dict], where: str) -> Example:
    """A checked conversation → its context (every turn before the last) and target (the last assistant turn)."""
    return Example("", messages[-1]["content"], where, tuple(messages[:-1]))


def as_conversation(ex: Example, system: str | None) -> Example:
    """A templated example as a chat: [system], the input as the user turn, the target as the assistant's."""
    turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": ex.input}]
    return Example("", ex.target, ex.where, tuple(turns))


def with_system(ex: Example, system: str | None) -> Example:
    """`data.system` for a conversation that has no system turn."""
    if not system or ex.messages is None or any(m["role"] == "system" for m in ex.messages):
        return ex
    return replace(ex, messages=({"role": "system", "content": system}, *ex.messages))


def with_shots(
    examples: list[Example], pool: list[Example], k: int, delimiter: str, separator: str, seed: int
) -> list[Example]:
    """Prefix each example with k exemplars drawn from `pool` (never itself), deterministically by seed and index."""
    if k == 0:
        return examples
    if len(pool) <= k:
        raise DataError(f"data.shots={k} needs more than {k} training examples, have {len(pool)}")
    out = []
    for i, ex in enumerate(examples):
        rng = random.Random(seed * 1_000_003 + i)
        shots = [s for s in rng.sample(pool, k + 1) if s is not ex][:k]
        if ex.messages is not None:
            out.append(_turn_shots(ex, shots))
            continue
        context = separator.join(f"{s.input}{delimiter}{s.target}" for s in shots)
        out.append(Example(f"{context}{separator}{ex.input}", ex.target, ex.where))
    return out


def _turn_shots(ex: Example, shots: list[Example]) -> Example:
    """Exemplars as earlier user/assistant turns (after the system turns), each an exemplar's final exchange; their
    assistant turns carry train=False, so the loss stays on the example's own answer."""
    turns = []
    for s in shots:
        if s.messages is None:
            raise DataError(f"{s.where}: data.shots cannot mix text records with conversations")
        last_user = max(i for i, m in enumerate(s.messages) if m["role"] == "user")
        turns += [{**m, "train": False} if m["role"] == "assistant" else m for m in s.messages[last_user:]]
        turns.append({"role": "assistant", "content": s.target, "train": False})
    system = [m for m in ex.messages if m["role"] == "system"]
    rest = [m for m in ex.messages if m["role"] != "system"]
    return replace(ex, messages=(*system, *turns, *rest))


def with_chat_template(examples: list[Example], tokenizer, system: str | None = None) -> list[Example]:
    """Each example as a conversation (its input the user turn, after `system`), `input` set to the rendering up to
    the assistant turn (what the model reads; the template's raised rules are reported per record)."""
    from promot.data.chat import ChatTemplate

    chat = ChatTemplate(tokenizer, max_length=0)
    out = []
    for ex in examples:
        ex = with_system(ex, system) if ex.messages is not None else as_conversation(ex, system)
        out.append(replace(ex, input=chat.render(ex.messages, ex.where, generation_prompt=True)))
    return out
