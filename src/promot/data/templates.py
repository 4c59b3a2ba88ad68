"""Records → (input text, target text) examples: templates over named columns, k-shot contexts, chat wrapping."""
from __future__ import annotations

import random
from dataclasses import dataclass

from promot.data.records import Record
from promot.errors import DataError


@dataclass(frozen=True)
class Example:
    input: str
    """What the model reads (after templating and k-shot context)."""
    target: str
    """What it must produce, without the delimiter."""
    where: str


class _Fields(dict):
    def __init__(self, record: Record) -> None:
        super().__init__(record.fields)
        self.where = record.where

    def __missing__(self, key: str):
        raise DataError(f"{self.where}: field '{key}' is missing (have: {', '.join(sorted(self)) or 'none'})")


def _fill(template: str, record: Record) -> str:
    try:
        return template.format_map(_Fields(record))
    except (ValueError, IndexError) as e:
        raise DataError(f"{record.where}: template {template!r} is malformed ({e})") from None


def render(records: list[Record], template: str | None, completion: str) -> list[Example]:
    """Apply the input template (default: the `prompt` field) and the target template to every record."""
    examples = []
    for r in records:
        text, target = _fill(template or "{prompt}", r), _fill(completion, r)
        if not target.strip():
            raise DataError(f"{r.where}: empty target")
        examples.append(Example(text, target.strip(), r.where))
    return examples


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
        context = separator.join(f"{s.input}{delimiter}{s.target}" for s in shots)
        out.append(Example(f"{context}{separator}{ex.input}", ex.target, ex.where))
    return out


def with_chat_template(examples: list[Example], tokenizer) -> list[Example]:
    """Wrap each input as a user turn and open the assistant turn (the target follows it)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("data.chat_template is on but the tokenizer has no chat template")
    return [
        Example(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": ex.input}], tokenize=False, add_generation_prompt=True
            ),
            ex.target,
            ex.where,
        )
        for ex in examples
    ]
