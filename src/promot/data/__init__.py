"""① Data: records in (JSONL, JSON, CSV, parquet, datasets; any shape of `shapes.py`), examples (templated text or
conversations, k-shot), token batches out (a conversation rendered by the tokenizer's chat template)."""
from __future__ import annotations

from dataclasses import dataclass

from promot.data.collate import IGNORE, Collator, Tokenizing, pad
from promot.data.records import Record, read_records
from promot.data.shapes import Shape
from promot.data.templates import (Example, as_conversation, conversation_example, render, with_chat_template,
                                   with_shots, with_system)
from promot.errors import DataError

__all__ = [
    "IGNORE", "Collator", "Example", "Record", "TaskData", "Tokenizing", "answer_texts", "load_task_data", "pad",
    "read_examples", "read_records", "render", "with_chat_template", "with_shots",
]


@dataclass
class TaskData:
    train: list[Example]
    validation: list[Example]
    chat: bool = False
    """The examples are rendered in the tokenizer's chat template (`chat_template: true`, or the records are
    conversations): learned from the data, recorded in run.json, never written back into the config."""


def read_examples(cfg, source: str, split: str) -> list[Example]:
    """Records of any shape → examples: templated text (prompt-completion) or conversations (the rest)."""
    shape = Shape(cfg)
    out = []
    for r in read_records(source, split):
        kind = shape.detect(r)
        if kind == "prompt-completion":
            out += render([r], cfg.template, cfg.completion)
        else:
            out.append(conversation_example(shape.conversation(r, kind), r.where))
    return out


def load_task_data(cfg, tokenizer=None, seed: int = 0, hold_out: bool = True) -> TaskData:
    """DataConfig → train/validation examples (templated or conversations, k-shot, chat-rendered). Validation shots
    come from train. `hold_out=False`: data nothing is selected on (replay) keeps every record for training.
    Data holding conversations trains in the chat template (`TaskData.chat`; run.json records it and `load_run`
    generates in the template too)."""
    train = read_examples(cfg, cfg.train, cfg.train_split)
    if cfg.validation:
        val = read_examples(cfg, cfg.validation, cfg.validation_split)
    elif not hold_out:
        val = []
    else:
        n = min(cfg.validation_size, len(train) // 5)
        if n < 1:
            raise DataError(f"{cfg.train}: too few records ({len(train)}) to hold out a validation set; "
                            "set data.validation")
        train, val = train[:-n], train[-n:]
    in_chat = cfg.chat_template or any(ex.messages is not None for ex in [*train, *val])
    if in_chat:  # before shots, so exemplars become turns after the system prompt
        def chat(exs):
            return [with_system(ex, cfg.system) if ex.messages is not None else as_conversation(ex, cfg.system)
                    for ex in exs]

        train, val = chat(train), chat(val)
    pool = train
    train = with_shots(train, pool, cfg.shots, cfg.target_delimiter, cfg.shot_separator, seed)
    val = with_shots(val, pool, cfg.shots, cfg.target_delimiter, cfg.shot_separator, seed + 1)
    if in_chat:
        train, val = with_chat_template(train, tokenizer), with_chat_template(val, tokenizer)
    return TaskData(train, val, in_chat)


def answer_texts(examples: list[Example], train_on: str = "all") -> list[str]:
    """What the model is trained to write: every target, and with `train_on: all` the earlier assistant turns a
    conversation trains on too (leakage's label set is read from these)."""
    out = []
    for ex in examples:
        if train_on == "all" and ex.messages:
            out += [m["content"].strip() for m in ex.messages if m["role"] == "assistant" and m.get("train", True)]
        out.append(ex.target)
    return out
