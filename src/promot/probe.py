"""The shape every training probe shares: `bind(trainer)`, `every`, `measure() -> {name: value}`.

A probe is a TrainerCallback that measures something about the model being trained and logs it through the
Trainer (`trainer.log_probe`: metrics.jsonl, TensorBoard, whatever `report_to` names). When it measures is
written once, here: at step 0 when training begins (`at_start`; a resumed stage measured its checkpoint's step
before the interruption) and at the end of every step that is a multiple of `every`. The stage-2 probes:
`evaluate.monitor.SpecializationMonitor`, `evaluate.gradient_alignment.GradientAlignmentProbe`,
`training.update_size.UpdateSizeProbe`.
"""
from __future__ import annotations

from transformers import TrainerCallback


class Probe(TrainerCallback):
    every: int = 1
    """Measure at the end of every step that is a multiple of this."""
    at_start: bool = True
    """Also measure at step 0, when training begins."""
    trainer = None

    def bind(self, trainer) -> None:
        """The Trainer whose model is probed and whose log receives the values."""
        self.trainer = trainer

    def measure(self) -> dict[str, float]:
        """What gets logged now; an empty dict logs nothing."""
        raise NotImplementedError

    def due(self, step: int) -> bool:
        return self.trainer is not None and step % self.every == 0

    def _log(self) -> None:
        values = self.measure()
        if values:
            self.trainer.log_probe(values)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.at_start and state.global_step == 0 and self.due(0):
            self._log()

    def on_step_end(self, args, state, control, **kwargs):
        if self.due(state.global_step):
            self._log()
