"""Preemption: SIGTERM (what schedulers and spot instances send before a kill) and SIGINT (ctrl-C) finish the
current optimizer step, write a checkpoint and stop the run with one line saying how to resume.

`catch_signals()` swaps the handlers in for the run (main thread only; a second signal gets the previous handler
at once: ctrl-C twice still kills). `StopOnSignal`, a TrainerCallback, turns a caught signal into Trainer's own
`should_save` + `should_training_stop` at the end of the step, so the checkpoint is an ordinary one and the resumed
run equals an uninterrupted one. Under `accelerate launch` every process catches it, and the processes agree each
step (a MAX all-reduce of the flag), so they stop at the same step and save together.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import TrainerCallback

from promot.errors import Interrupted

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
_caught: list[int] = []
"""Signals caught during the current run (this process)."""


def caught() -> int | None:
    """The first signal caught by this process during the run, or None."""
    return _caught[0] if _caught else None


@contextmanager
def catch_signals() -> Iterator[None]:
    """Catch SIGTERM/SIGINT for the block (nothing happens off the main thread: signals cannot be handled there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum, frame):
        if _caught:  # the second one: stop waiting for the step
            for s, h in previous.items():
                signal.signal(s, h)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        _caught.append(signum)
        log.warning("%s: finishing the current step, then writing a checkpoint (again to stop at once)",
                    signal.Signals(signum).name)

    _caught.clear()
    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _caught.clear()


def _agreed(args) -> int:
    """The signal any process caught (0: none). A collective under several processes: every process calls it."""
    import torch
    import torch.distributed as dist

    mine = caught() or 0
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return mine
    t = torch.tensor([mine], device=args.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


class StopOnSignal(TrainerCallback):
    """At the end of the step in which a signal arrived: save a checkpoint (Trainer's own) and stop training."""

    def __init__(self) -> None:
        self.signum = 0

    def on_step_end(self, args, state, control, **kwargs):
        signum = _agreed(args)
        if signum and state.global_step < state.max_steps:  # at the last step the stage just ends as usual
            self.signum = signum
            control.should_save = True
            control.should_training_stop = True


def interrupted(run_dir, stage: str, step: int | None, signum: int) -> Interrupted:
    """The one line a preempted run ends with."""
    name = signal.Signals(signum).name
    at = f"{stage} step {step}: checkpoint written" if step is not None else f"before {stage}"
    return Interrupted(f"{run_dir}: stopped by {name} ({at}); continue with `promot train --resume {run_dir}`",
                       128 + signum)
