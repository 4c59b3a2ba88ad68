"""Run `promot train` (or `--resume`) in its own process and SIGKILL it at a chosen step of a chosen stage.

    python tests/resume_driver.py CONFIG.yaml|RUN_DIR STAGE STEP [--resume]

Selection is made non-trivial: the target score is a deterministic hash of the weights, so the best checkpoint
is an arbitrary step (often not a saved one) and a resumed stage must carry best-so-far to select the same.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from transformers import TrainerCallback


def weight_hash_score(lm, *args, **kwargs) -> float:
    total = sum(p.double().sum().item() for p in lm.parameters())
    return float(abs(hash(total)) % 97)


class KillAt(TrainerCallback):
    """SIGKILL this process right after optimizer step `step` of `stage` (before that step's checkpoint)."""

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_step_end(self, args, state, control, **kwargs):
        if Path(args.output_dir).name == self.stage and state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(TrainerCallback):
    """Send this process `signum` (SIGTERM: what a scheduler sends before a kill) right after step `step` of
    `stage`; promot is expected to finish the step, write a checkpoint and stop."""

    def __init__(self, stage: str, step: int, signum: int = signal.SIGTERM) -> None:
        self.stage, self.step, self.signum = stage, step, signum

    def on_step_end(self, args, state, control, **kwargs):
        if Path(args.output_dir).name == self.stage and state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


if __name__ == "__main__":
    import promot.training.multitask as loop  # where selection scores a task
    from promot import api

    loop.target_score = weight_hash_score
    target, stage, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kill = [KillAt(stage, step)]
    api.resume(target, callbacks=kill) if "--resume" in sys.argv else api.train(target, callbacks=kill)
    sys.exit(0)
