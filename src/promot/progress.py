"""What a person sees while promot works: one progress bar per training stage and per evaluated variant.

HF Trainer prints a bar plus a dict per log step, and lm-eval a bar per task per pass (well over a hundred lines
for the demo). Unless verbose (`--verbose`, `set_verbose(True)`), promot replaces them with one line each: a live
tqdm bar (with ETA) when stderr is a terminal, else one log line when the work ends (so a log file or a pipe gets
no carriage-return redraws, and an error line printed after a failure stands alone). lm-eval's own bars are
silenced; verbose keeps every library's own output.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

_verbose = False
_LM_EVAL_TQDM = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface")


def set_verbose(on: bool) -> None:
    """Let the libraries print their own progress bars and logs (the `--verbose` flag)."""
    global _verbose
    _verbose = on


def verbose() -> bool:
    return _verbose


class Progress:
    """One line for one piece of work: a live tqdm bar on a terminal, else a log line when it ends."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "steps") -> None:
        from tqdm.auto import tqdm

        self.total, self.desc, self.n, self.unit, self.start = total, desc, initial, unit, time.monotonic()
        self.bar = tqdm(total=total, desc=desc, initial=initial, unit=" " + unit, leave=True, dynamic_ncols=True,
                        disable=None, bar_format="{l_bar}{bar:20}{r_bar}")  # a short bar leaves room for the outcome

    def update_to(self, n: int) -> None:
        self.bar.update(n - self.n)
        self.n = n

    def note(self, text: str) -> None:
        """Shown after the bar (the loss, the pass being run)."""
        self.bar.set_postfix_str(text, refresh=False)

    def close(self, outcome: str = "", failed: bool = False) -> None:
        """End the line with the outcome; a failed piece of work leaves no line (the error says what happened)."""
        if self.bar.disable and not failed:
            log.info("%s: %s/%s %s in %.1f s%s", self.desc, self.n, self.total, self.unit,
                     time.monotonic() - self.start, f", {outcome}" if outcome else "")
        if failed:
            self.bar.leave = False
        elif outcome:
            self.note(outcome)
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(failed=kind is not None)


@contextlib.contextmanager
def quiet_bars(module_names: tuple[str, ...]) -> Iterator[None]:
    """Silence the bars of libraries that bind `tqdm` at import and offer no switch: each module's name is swapped
    for a disabled one; nothing changes when verbose."""
    if _verbose:
        yield
        return
    from tqdm import tqdm

    def silent(*args, **kwargs):
        kwargs["disable"] = True
        return tqdm(*args, **kwargs)

    modules = [importlib.import_module(m) for m in module_names]
    saved = [m.tqdm for m in modules]
    for m in modules:
        m.tqdm = silent
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m.tqdm = original


def quiet_lm_eval():
    """lm-eval's per-task and per-request bars, silenced."""
    return quiet_bars(_LM_EVAL_TQDM)


def stage_progress(desc: str):
    """A Trainer callback giving a training stage one progress line, from its first finished step on (a stage that
    fails at once prints nothing but its error); `close(outcome)` ends it, `close(failed=True)` wipes it."""
    from transformers import TrainerCallback

    class StageProgress(TrainerCallback):
        def __init__(self) -> None:
            self.line: Progress | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            if self.line is None:  # a resumed stage starts where it stood
                self.line = Progress(state.max_steps, desc, initial=state.global_step - 1)
            self.line.update_to(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.line is not None and logs and "loss" in logs:
                self.line.note(f"loss {logs['loss']:.3g}")

        def close(self, outcome: str = "", failed: bool = False) -> None:
            if self.line is not None:
                self.line.close(outcome, failed)
                self.line = None

    return StageProgress()


def set_up_logging(debug: bool, verbose_output: bool, main_process: bool = True) -> None:
    """One progress story: our lines at INFO (DEBUG with --debug), the libraries' own logs and bars only when
    verbose; processes other than the main one of a launched run warn only."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    if not main_process:
        logging.getLogger().setLevel(logging.WARNING)
    set_verbose(debug or verbose_output)
    if not verbose():
        for noisy in ("transformers", "peft", "accelerate", "datasets", "httpx", "huggingface_hub", "lm_eval",
                      "lm-eval", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        silence_library_bars()


def silence_library_bars() -> None:
    """The libraries' own bars off, in this process and in those it starts: transformers' ("Loading weights"),
    huggingface_hub's (downloads) and datasets' ("Generating train split", "Saving the dataset"). Each stage and
    evaluated variant gets one line instead; the GGUF converter's bar is silenced where it runs (`quiet_bars`)."""
    import os
    import sys

    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_progress_bars()
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    if "datasets" in sys.modules:  # else the variable above keeps its bars off when it is imported
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
