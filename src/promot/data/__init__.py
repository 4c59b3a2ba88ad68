"""① Data: records in (JSONL/CSV/datasets), templated examples, token batches out."""
from __future__ import annotations

from dataclasses import dataclass

from promot.data.collate import IGNORE, Collator, Tokenizing, pad
from promot.data.records import Record, read_records
from promot.data.templates import Example, render, with_chat_template, with_shots
from promot.errors import DataError

__all__ = [
    "IGNORE", "Collator", "Example", "Record", "TaskData", "Tokenizing", "load_task_data", "pad", "read_records",
    "render", "with_chat_template", "with_shots",
]


@dataclass
class TaskData:
    train: list[Example]
    validation: list[Example]


def load_task_data(cfg, tokenizer=None, seed: int = 0, hold_out: bool = True) -> TaskData:
    """DataConfig → train/validation examples (templated, k-shot, chat-wrapped). Validation shots come from train.
    `hold_out=False`: data nothing is selected on (replay) keeps every record for training."""
    train = render(read_records(cfg.train, cfg.train_split), cfg.template, cfg.completion)
    if cfg.validation:
        val = render(read_records(cfg.validation, cfg.validation_split), cfg.template, cfg.completion)
    elif not hold_out:
        val = []
    else:
        n = min(cfg.validation_size, len(train) // 5)
        if n < 1:
            raise DataError(f"{cfg.train}: too few records ({len(train)}) to hold out a validation set; "
                            "set data.validation")
        train, val = train[:-n], train[-n:]
    pool = train
    train = with_shots(train, pool, cfg.shots, cfg.target_delimiter, cfg.shot_separator, seed)
    val = with_shots(val, pool, cfg.shots, cfg.target_delimiter, cfg.shot_separator, seed + 1)
    if cfg.chat_template:
        train, val = with_chat_template(train, tokenizer), with_chat_template(val, tokenizer)
    return TaskData(train, val)
