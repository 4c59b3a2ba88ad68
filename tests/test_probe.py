"""The one probe shape (promot.probe.Probe): when a probe measures is written once, and every stage-2 probe has it."""
from __future__ import annotations

from types import SimpleNamespace

from promot.evaluate.gradient_alignment import GradientAlignmentProbe
from promot.evaluate.monitor import SpecializationMonitor
from promot.probe import Probe
from promot.training.update_size import UpdateSizeProbe


class Counter(Probe):
    def __init__(self, every: int, at_start: bool = True) -> None:
        self.every, self.at_start, self.n = every, at_start, 0

    def measure(self) -> dict[str, float]:
        self.n += 1
        return {"n": float(self.n)}


class Log:
    def __init__(self) -> None:
        self.logged = []

    def log_probe(self, metrics):
        self.logged.append(metrics)


def _steps(probe: Probe, first: int, last: int) -> list[int]:
    """Run the callbacks as Trainer does from global step `first` to `last`; the steps at which values were logged."""
    trainer, steps = Log(), []
    probe.bind(trainer)
    state = SimpleNamespace(global_step=first)
    probe.on_train_begin(None, state, None)
    steps += [first] * len(trainer.logged)
    for step in range(first + 1, last + 1):
        before = len(trainer.logged)
        state.global_step = step
        probe.on_step_end(None, state, None)
        steps += [step] * (len(trainer.logged) - before)
    return steps


def test_step_zero_then_every_n_and_a_resumed_stage_does_not_repeat_its_start():
    assert _steps(Counter(3), 0, 7) == [0, 3, 6]
    assert _steps(Counter(3, at_start=False), 0, 7) == [3, 6]
    assert _steps(Counter(3), 4, 7) == [6]  # resumed at step 4: step 4 was measured before the interruption
    assert Counter(2).on_step_end(None, SimpleNamespace(global_step=2), None) is None  # unbound: nothing


def test_every_stage2_probe_has_the_shape():
    for cls in (SpecializationMonitor, GradientAlignmentProbe, UpdateSizeProbe):
        assert issubclass(cls, Probe) and "measure" in vars(cls)
    assert UpdateSizeProbe.at_start is False
    probe = UpdateSizeProbe()
    probe.bind(SimpleNamespace(args=SimpleNamespace(logging_steps=5)))
    assert probe.every == 5 and probe.measure() == {}
