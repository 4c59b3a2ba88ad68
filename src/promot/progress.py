"""What a person sees while promot works: one progress bar per training stage and per evaluated variant.

HF Trainer prints a bar plus a dict per log step, and lm-eval a bar per task per pass (well over a hundred lines
for the demo). Unless verbose (`--verbose`, `set_verbose(True)`), promot replaces them with one tqdm line each
(with ETA) and silences lm-eval's own bars; verbose keeps every library's own output.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

_verbose = False
_LM_EVAL_TQDM = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface")


def set_verbose(on: bool) -> None:
    """Let the libraries print their own progress bars and logs (the `--verbose` flag)."""
    global _verbose
    _verbose = on


def verbose() -> bool:
    return _verbose


def bar(total: int | None, desc: str, initial: int = 0):
    """One tqdm line (with ETA), left on screen when done."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, leave=True, dynamic_ncols=True)


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """Silence lm-eval's per-task and per-request bars (they bind `tqdm` at import, so each module's name is
    swapped for a disabled one); nothing changes when verbose."""
    if _verbose:
        yield
        return
    from tqdm import tqdm

    def silent(*args, **kwargs):
        kwargs["disable"] = True
        return tqdm(*args, **kwargs)

    modules = [importlib.import_module(m) for m in _LM_EVAL_TQDM]
    saved = [m.tqdm for m in modules]
    for m in modules:
        m.tqdm = silent
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m.tqdm = original


def stage_progress(desc: str):
    """A Trainer callback drawing one bar for a training stage, from its first finished step on (a stage that fails
    at once prints nothing but its error); `close(note)` ends it with the stage's outcome, `close(failed=True)`
    wipes it so an error line stands alone."""
    from transformers import TrainerCallback

    class StageProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None

        def on_step_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            if self.bar is None:  # a resumed stage starts where it stood
                self.bar = bar(state.max_steps, desc, initial=state.global_step - 1)
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix_str(f"loss {logs['loss']:.3g}", refresh=False)

        def close(self, note: str = "", failed: bool = False) -> None:
            if self.bar is None:
                return
            if failed:
                self.bar.leave = False
            elif note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.close()
            self.bar = None

    return StageProgress()
