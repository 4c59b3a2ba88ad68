"""The method table and each method room's settings, torch-free: ProMoT, its baselines and its rivals as data (the
paper's comparison, one row each), and what each room lets a user set and refuses — `lora.py`, `replay.py`,
`wise_ft.py`, `l2_sp.py`, `freeze.py`, `value_only.py`, `sdft.py`: a settings dataclass (a config section) and its
`problems`.

Below config.py in the layers (it imports nothing else of promot): config_sections.py builds its sections from these
dataclasses; config.py validates `method` against `METHODS` and gathers the rooms' `problems` into its one error
message.
What a room *does* in stage 2 lives in training/methods/, under the same names, where this table is resolved to the
rooms' hooks. A new method is a row here plus, if it does something new, one room in each place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from promot.methods import freeze, l2_sp, lora, replay, sdft, value_only, wise_ft


@dataclass(frozen=True)
class Recipe:
    """What a method is made of, by room name (training/methods/ puts each room's hooks in its place)."""

    stage1: bool
    """Run prompt tuning first (model frozen)."""
    stage2: Literal["full", "lora", "freeze", "value-only"] | None
    """What the model-tuning stage trains (`full`: every weight, `lora`: an adapter, `freeze`: all but the embeddings
    and the bottom blocks, `value-only`: the attention value projections), or None: no stage 2."""
    prompt: Literal["trained", "joint", "random"] | None
    """The prompt during stage 2 and at target-task inference: stage 1's (frozen), a fresh one trained with the
    model (joint), a fresh one never trained (random), or none."""
    addons: tuple[str, ...] = ()
    """What the method adds to stage 2: replay data, a penalty toward the base weights, weight interpolation, an
    objective of its own (self-distillation)."""


METHODS: dict[str, Recipe] = {
    "promot": Recipe(stage1=True, stage2="full", prompt="trained"),
    "finetune": Recipe(stage1=False, stage2="full", prompt=None),
    "prompt-tuning": Recipe(stage1=True, stage2=None, prompt="trained"),
    "joint": Recipe(stage1=False, stage2="full", prompt="joint"),
    "random-prompt": Recipe(stage1=False, stage2="full", prompt="random"),
    "lora": Recipe(stage1=False, stage2="lora", prompt=None),
    "promot-lora": Recipe(stage1=True, stage2="lora", prompt="trained"),
    # rivals a practitioner weighs (issue: the forgetting frontier)
    "wise-ft": Recipe(stage1=False, stage2="full", prompt=None, addons=("wise-ft",)),
    "promot-wise-ft": Recipe(stage1=True, stage2="full", prompt="trained", addons=("wise-ft",)),
    "replay": Recipe(stage1=False, stage2="full", prompt=None, addons=("replay",)),
    "promot-replay": Recipe(stage1=True, stage2="full", prompt="trained", addons=("replay",)),
    "l2-sp": Recipe(stage1=False, stage2="full", prompt=None, addons=("l2-sp",)),
    "freeze": Recipe(stage1=False, stage2="freeze", prompt=None),
    "value-only": Recipe(stage1=False, stage2="value-only", prompt=None),
    "sdft": Recipe(stage1=False, stage2="full", prompt=None, addons=("sdft",)),
}

ADDONS = {"replay": replay, "wise-ft": wise_ft, "l2-sp": l2_sp, "sdft": sdft}
"""Each add-on's settings room, by the name the table uses."""

TUNINGS = {"lora": lora, "freeze": freeze, "value-only": value_only}
"""Each stage-2 tuning's settings room (full fine-tuning has none of its own)."""

SECTIONS = {"lora": "lora", "replay": "replay", "wise-ft": "wise_ft", "l2-sp": "l2_sp", "freeze": "freeze",
            "value-only": "value_only", "sdft": "sdft"}
"""Each room's config section, by the name the table uses."""


def stage2_lr(cfg: Any) -> tuple[float, str]:
    """The stage-2 lr `cfg.method` trains at, and the key that set it: its rooms' own `lr` (the tuning's, then each
    add-on's, the first one set), else `stage2.lr`."""
    recipe = METHODS[cfg.method]
    for room in (recipe.stage2, *recipe.addons):
        section = SECTIONS.get(room or "")
        if section and getattr(cfg, section).lr is not None:
            return float(getattr(cfg, section).lr), f"{section}.lr"
    return float(cfg.stage2.lr), "stage2.lr"


def problems(cfg: Any) -> list[str]:
    """Every room's problems with a run's config (a `promot.config.RunConfig` whose value types are already
    checked), as one-line messages: the tunings' settings in every run, as every section's values are; an add-on's
    settings in the runs of the methods that use it (a `replay:` section is only required there)."""
    recipe = METHODS.get(cfg.method)  # an unknown method: config.py names it
    addons = recipe.addons if recipe else ()
    return [*(line for room in TUNINGS.values() for line in room.problems(cfg)),
            *(line for name in addons for line in ADDONS[name].problems(cfg))]


__all__ = ["ADDONS", "METHODS", "SECTIONS", "TUNINGS", "Recipe", "problems", "stage2_lr"]
