"""The leakage guard: does the bare model still answer other requests in their own way?

At step 0 and at every selection step of stage 2, the model with no prompt answers a fixed set of generic requests
greedily with a short budget (through its chat template when the run trains in it); the share of answers that fall
in the fine-tuned task's format (its label set, or `guard.format_regex`) is the checkpoint's guard leakage. It needs
no labels, so it runs in every run; selection (training/selection.py) keeps the least leaking of the checkpoints
whose target score is within its interval of the best.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from promot.data import Example, read_records
from promot.data.collate import Tokenizing
from promot.data.shapes import Shape
from promot.errors import DataError
from promot.evaluate.metrics import AnswerFormat, leakage

DEFAULT_REQUESTS = Path(__file__).with_name("guard_requests.jsonl")
"""100 instructions and questions written for this project: varied, none answerable by a label word."""


def load_requests(source: str | Path | None = None, data_cfg=None, limit: int | None = None) -> list[Example]:
    """The guard's requests as examples with no target: a .txt file (one request per line), or records of any
    shape `data.train` accepts (read with `data_cfg`'s format, columns and roles): a bare `prompt`, a prompt and
    completion (the prompt is asked), or a conversation (every turn before its last assistant turn is asked)."""
    source = str(source or DEFAULT_REQUESTS)
    if source.endswith(".txt"):
        try:
            lines = Path(source).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"guard.data: {source}: cannot be read ({e})") from None
        examples = [Example(line.strip(), "", f"{source}:{i}") for i, line in enumerate(lines, 1) if line.strip()]
    else:
        examples = [_request(r, Shape(data_cfg) if data_cfg is not None else None) for r in read_records(source)]
    if not examples:
        raise DataError(f"guard.data: {source}: no requests")
    return examples[:limit] if limit else examples


def _request(record, shape: Shape | None) -> Example:
    prompt = record.fields.get("prompt")
    if isinstance(prompt, str) and record.fields.get("completion") is None:
        if not prompt.strip():
            raise DataError(f"{record.where}: field 'prompt' is empty")
        return Example(prompt.strip(), "", record.where)
    if shape is None:
        raise DataError(f"{record.where}: a guard request needs a non-empty string field 'prompt'")
    kind = shape.detect(record)
    if kind == "prompt-completion":
        from promot.data import render

        return replace(render([record], shape.template, "{completion}")[0], target="")
    messages = shape.conversation(record, kind)
    return Example("", "", record.where, tuple(messages[:-1]))


class LeakageGuard:
    """Generic requests, the target's format, and how to ask: everything a reading needs besides the model."""

    def __init__(self, requests: list[Example], fmt: AnswerFormat, tokenizer, max_length: int, chat: bool,
                 max_new_tokens: int = 8, batch_size: int = 16, bf16: bool = False, seq2seq: bool = False) -> None:
        self.fmt, self.max_new_tokens, self.batch_size, self.bf16 = fmt, max_new_tokens, batch_size, bf16
        self.seconds = 0.0
        """Wall time spent reading the guard so far: what it adds to a stage (run.json `guard_seconds`)."""
        chat = chat and getattr(tokenizer, "chat_template", None) is not None and not seq2seq
        self.tokenizing = Tokenizing(tokenizer, seq2seq=seq2seq, max_length=max_length, special_in_text=chat)
        if chat:  # as the run trains: a text request is the user's turn
            self.examples = [ex if ex.messages else replace(ex, messages=({"role": "user", "content": ex.input},))
                             for ex in requests]
        else:  # a conversation without a template: its turns' text, one per line
            self.examples = [ex if not ex.messages else replace(ex, messages=None, input="\n".join(
                m["content"] for m in ex.messages)) for ex in requests]

    def answers(self, model) -> list[str]:
        """The bare model's greedy answers (the weights training holds now; no prompt)."""
        from promot.prompt import PromptedLM
        from promot.prompt.generate import generate_texts

        bare = PromptedLM(model, None)
        return generate_texts(bare, self.tokenizing, self.examples, self.max_new_tokens, self.batch_size, self.bf16)

    def measure(self, model) -> float:
        """The share (0-1) of answers in the target's format; the time it took adds to `seconds`."""
        started = time.perf_counter()
        share = leakage(self.answers(model), self.fmt)
        self.seconds += time.perf_counter() - started
        return share
