"""`promot demo`: the paper's story on the shipped world model, offline, in minutes on 2 CPU cores.

`promot compare` on the world config: fine-tunes the world model on its True/False target with every method (same
data, same stage-2 budget), evaluates base and every run on the `world` suite (target with the prompt, ICL tasks
without it, leakage of "true"/"false" into other tasks), and renders the report with its forgetting frontier. Only
the public API is used: this is what a user's script does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from promot.evaluate.suites import suite_dir
from promot.world.guard_set import GUARD_SET

DEMO_CONFIG = Path(__file__).parent / "demo.yaml"
METHODS = ("finetune", "prompt-tuning", "joint", "lora", "promot", "wise-ft", "replay")
TARGET_TASK = "world_true_false"
# --quick: the same pipeline at a budget that checks it runs end to end (CI), not one that shows the effect.
QUICK = {"stage1.steps": 20, "stage2.steps": 20, "stage1.eval_every": 10, "stage2.eval_every": 10,
         "stage2.warmup_steps": 5, "eval.limit": 16, "monitor.every": 20, "monitor.limit": 4,
         "monitor.alignment_every": 20, "wise_ft.alphas": [0.0, 0.5, 1.0]}


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    methods: tuple[str, ...] = METHODS
    shots: tuple[int, ...] = (1, 4)
    limit: int | None = 48
    """Items per world task in the final evaluation."""
    quick: bool = False
    seeds: tuple[int, ...] | None = None
    """Train every method once per seed (OUT/<method>/seed-<s>); the report sums each method up over its seeds."""
    overrides: tuple[str, ...] = ()
    """`key.sub=value` config overrides applied to every method's run, as in `promot train`."""


def demo_config(quick: bool = False) -> dict:
    """demo.yaml + the world target's data paths, the world's replay data and guard requests (+ the --quick
    budget)."""
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    data = suite_dir("world") / "data"
    cfg["data"].update(train=str(data / "true_false.train.jsonl"), validation=str(data / "true_false.validation.jsonl"))
    cfg["replay"]["train"] = str(data / "replay.train.jsonl")
    cfg.setdefault("guard", {})["data"] = str(GUARD_SET)
    for key, value in (QUICK if quick else {}).items():
        section, field = key.split(".")
        cfg.setdefault(section, {})[field] = value
    return cfg


def run_demo(settings: DemoSettings = DemoSettings()) -> tuple[list[Path], Path]:
    """Train every method, evaluate, render the report. Returns (run directories, report.html path)."""
    from promot.compare import compare
    from promot.evaluate.runner import EvalSpec

    spec = EvalSpec(tasks=["world", TARGET_TASK], shots=list(settings.shots[:1] if settings.quick else settings.shots),
                    limit=8 if settings.quick else settings.limit, target_tasks=(TARGET_TASK,), batch_size=64,
                    bf16=False)  # as demo.yaml: exact fp32 for a tiny model
    return compare(demo_config(settings.quick), list(settings.methods), spec, settings.out, list(settings.overrides),
                   list(settings.seeds) if settings.seeds else None)
