"""`promot <args>` in a process started by `accelerate launch --config_file fsdp2.yaml`, on CPU.

accelerate enables FSDP only on accelerators and falls back to plain DDP on CPU processes; this driver lets its
FSDP plugin through (two lines of accelerate state), so CI can run promot's FSDP2 path - sharded stage 1, fresh
model for stage 2, per-shard best-checkpoint selection, gathered saving, resume - on gloo.

Selection is scripted by step (SCORES), so the selected step is an intermediate one in both stages, in any process
and across a resume. PROMOT_KILL_AT=STAGE:STEP SIGKILLs the run there.
"""
from __future__ import annotations

import functools
import os
import sys

from transformers import TrainerCallback

from promot.training import multitask as loop  # where selection scores a task

SCORES = {0: 10.0, 2: 40.0, 4: 20.0, 6: 30.0}  # per stage: the best is step 2
_real_score = loop.target_score


class StepClock(TrainerCallback):
    """Which step the next evaluation scores."""

    step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        StepClock.step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        StepClock.step = state.global_step


def scripted_score(*args, **kwargs) -> float:
    """Still generates (every process must run the same sharded forwards), but returns the step's scripted score."""
    _real_score(*args, **kwargs)
    return SCORES.get(StepClock.step, 0.0)


def enable_fsdp_on_cpu() -> None:
    from accelerate import state
    from accelerate.utils import DistributedType

    init = state.AcceleratorState.__init__

    def patched(self, *args, fsdp_plugin=None, **kwargs):
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin

    state.AcceleratorState.__init__ = patched


if __name__ == "__main__":
    from promot import api
    from promot.cli import main
    from tests.resume_driver import KillAt

    enable_fsdp_on_cpu()
    loop.target_score = scripted_score
    callbacks = [StepClock()]
    if os.environ.get("PROMOT_KILL_AT"):
        stage, step = os.environ["PROMOT_KILL_AT"].split(":")
        callbacks.append(KillAt(stage, int(step)))
    api.train = functools.partial(api.train, callbacks=callbacks)
    api.resume = functools.partial(api.resume, callbacks=callbacks)
    sys.exit(main(sys.argv[1:]))
