"""Every private part of HF `Trainer` that promot's loop overrides or reads, in one place, with the reason no public
hook (callbacks, `compute_loss`, `TrainerCallback` state) suffices. Each holds only while transformers keeps it as
it was in the pinned version; tests/test_trainer_privates.py fails the day one changes or a new one appears."""
from __future__ import annotations

PINNED = "5.23.0"
"""The transformers version (constraints.txt) these were written against."""

OVERRIDDEN: dict[str, tuple[tuple[str, ...], str]] = {
    "_get_output_dir": (("self", "trial"),
                        "a checkpoint is written under .staging/ and renamed into place when complete; no hook says "
                        "where Trainer writes one"),
    "_save_checkpoint": (("self", "model", "trial"),
                         "the staging rename, the best-so-far selection state and a full disk's one line around "
                         "Trainer's own save; `on_save` runs only after the files are written"),
    "_save": (("self", "output_dir", "state_dict"),
              "a checkpoint's weights are model/ + prompt/ (the plain model and the soft prompt, never one without the "
              "other), not the wrapper's state dict; the public `save_model` is where Trainer gathers a sharded state "
              "dict (FSDP, ZeRO-3) and hands it to `_save`, so overriding it would re-implement that gathering"),
    "_load_from_checkpoint": (("self", "resume_from_checkpoint", "model"),
                              "resume loads model/ + prompt/ back into the wrapper (a LoRA checkpoint: the adapter), "
                              "and a checkpoint that no longer fits is one line"),
    "_load_optimizer_and_scheduler": (("self", "checkpoint"), "a checkpoint that no longer fits is one line"),
    "_load_rng_state": (("self", "checkpoint"), "a checkpoint that no longer fits is one line"),
}
"""Trainer methods PromotTrainer overrides: name → (parameters as in the pinned version, why)."""

READ: dict[str, str] = {
    "_tr_loss": "the running loss since the last log, saved with a checkpoint so a resumed run logs the same curve",
    "_globalstep_last_logged": "the step of that last log, saved beside it",
}
"""Trainer attributes the loop reads and restores on resume (training/loop.py: PromotTrainer.logging_state,
ResumeLogging): name → why."""
