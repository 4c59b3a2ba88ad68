"""How far one optimizer step moves the weights: ‖ΔW‖ ÷ ‖W‖ over every trainable tensor, logged as `update_ratio`.

Normalised optimizers (Adam, Adafactor without parameter scaling) move every weight by ≈ lr per step whatever the
loss, so a step's size — not the loss — says how fast a model drifts from its base; the paper's Adafactor
(parameter-scaled, lr 1e-3) moves ≈ 0.1% per step. Measured on the steps Trainer logs, so the copy it needs (one
of the trainable weights) is taken once per `logging_steps`, not every step.
"""
from __future__ import annotations

import torch

from promot.distributed import local
from promot.probe import Probe


class UpdateSizeProbe(Probe):
    """Measures the optimizer step of every logged step (`every` is Trainer's `logging_steps`), none at step 0: the
    weights are copied just before that step's optimizer update and compared just after it."""

    at_start = False

    def __init__(self) -> None:
        self._before: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._ratio: float | None = None

    @property
    def every(self) -> int:
        return self.trainer.args.logging_steps

    def _params(self) -> list[torch.Tensor]:
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        return [local(p) for p in model.parameters() if p.requires_grad]  # FSDP2: this process's shards

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.due(state.global_step + 1):  # the step this update completes
            self._before = [(p, p.detach().float().clone()) for p in self._params()]

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self._before is None:
            return
        with torch.no_grad():  # one host sync for all tensors, not two per tensor (on a GPU each .item() waits)
            sums = torch.stack([torch.stack([(p.detach().float() - old).pow(2).sum(), old.pow(2).sum()])
                                for p, old in self._before]).sum(0).tolist()
        self._before = None
        delta, weight = sums
        self._ratio = (delta / weight) ** 0.5 if weight > 0 else 0.0

    def measure(self) -> dict[str, float]:
        """The ratio of the update just made, once; nothing when this step's update was not measured."""
        ratio, self._ratio = self._ratio, None
        return {} if ratio is None else {"update_ratio": ratio}
