"""A stage's settings as HF Trainer's arguments: promot's evaluation (target score) and checkpoints, one compact
bar, and the paper's parameter-scaled Adafactor where Trainer's named optimizers cannot express it."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainingArguments

from promot.config import OPTIMIZERS, RunConfig, StageConfig
from promot.precision import resolve_bf16
from promot.progress import verbose

def optimizer(st: StageConfig) -> tuple | None:
    """(class, kwargs) for Trainer when its named optimizers cannot express the stage: Trainer's `adafactor`
    hard-codes scale_parameter=False, so the paper's parameter-scaled Adafactor is built here."""
    if st.optimizer == "adafactor" and st.scale_parameter:
        from transformers.optimization import Adafactor

        return Adafactor, {"lr": st.lr, "scale_parameter": True, "relative_step": False, "warmup_init": False}
    return None


def training_arguments(name: str, st: StageConfig, cfg: RunConfig, run_dir: Path, selecting: bool,
                       resuming: bool) -> TrainingArguments:
    """A stage's settings as Trainer's arguments: our evaluation (target score) and checkpoints, one compact bar."""
    return TrainingArguments(
        output_dir=str(run_dir / name),
        max_steps=st.steps,
        per_device_train_batch_size=st.batch_size,
        gradient_accumulation_steps=st.grad_accum,
        learning_rate=st.lr,
        optim=OPTIMIZERS[st.optimizer],
        lr_scheduler_type=st.lr_scheduler,
        warmup_steps=st.warmup_steps if st.warmup_steps < 1 else int(st.warmup_steps),
        weight_decay=st.weight_decay,
        max_grad_norm=st.max_grad_norm,
        logging_steps=max(1, min(10, st.steps // 10)),
        eval_strategy="steps" if st.eval_every and selecting else "no",
        eval_steps=st.eval_every or None,
        eval_on_start=st.eval_on_start and selecting and not resuming,  # a resumed stage has scored its start
        save_strategy="steps" if st.save_every else "no",
        save_steps=st.save_every or None,
        save_total_limit=st.save_total_limit,
        bf16=resolve_bf16(cfg.bf16, cfg.fp16),
        fp16=cfg.fp16,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        report_to=cfg.report_to or "none",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # every trainable tensor is used each step (Trainer assumes not for wrappers)
        activation_checkpointing=False,  # enabled on the inner model below; the wrapper has no such method
        disable_tqdm=not verbose(),  # one compact bar per stage instead (promot.progress)
    )

