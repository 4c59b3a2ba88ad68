"""What a stage sets on the model for itself alone — its dropout (stage 1's never leaks into stage 2) and gradient
checkpointing — and puts back when it ends, however it ends."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from promot.config import StageConfig


def _set_dropout(model: torch.nn.Module, p: float | None) -> list:
    """Set every dropout probability to p (None: leave them); returns what to hand back to restore them."""
    saved = []
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            saved.append((module, "p", module.p))
        elif isinstance(getattr(module, "attention_dropout", None), float):
            saved.append((module, "attention_dropout", module.attention_dropout))
    for module, attr, _ in saved if p is not None else ():
        setattr(module, attr, p)
    return saved


def _restore_dropout(saved: list) -> None:
    for module, attr, value in saved:
        setattr(module, attr, value)


@contextmanager
def stage_settings(model: torch.nn.Module, st: StageConfig) -> Iterator[None]:
    """The stage's own dropout (stage 1's never leaks into stage 2) and gradient checkpointing on `model`, put back
    when the stage ends, however it ends."""
    dropout = _set_dropout(model, st.dropout)
    if st.gradient_checkpointing:
        # Non-reentrant: works with a frozen model whose only trainable input is the prompt.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        _restore_dropout(dropout)
        if st.gradient_checkpointing:
            model.gradient_checkpointing_disable()

