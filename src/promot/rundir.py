"""The run directory as one contract: every file and folder name in it, and the typed record of a run. No torch.

    RUN/config.yaml          resolved config (written first, by the pipeline)
    RUN/config.fingerprint.json  a hash per resolved config key: --resume names the keys edited since the start
    .RUN.lock                beside RUN (survives overwrite): the one-writer lock (promot/lock.py), holder's pid/host
    RUN/data.sha256          the tokenized data's fingerprint: --resume refuses to continue on changed data
    RUN/metrics.jsonl        one line per Trainer log (stage, step, loss, lr, eval_target_score, probes), WiSE-FT's
                             α curve too: every line through training.loop.MetricsLog
    RUN/stage1/, stage2/     Trainer checkpoints every save_every steps (checkpoint-N/{model,prompt}/ + optimizer,
                             scheduler, RNG, data position and promot_state.json: best-so-far), staged under
                             .staging/ and renamed into place when complete; stage1/selected.safetensors: stage 1's
                             selected prompt + history, so a resumed run skips a finished stage 1
                             (multi-task: stage1-<task>/)
    RUN/lora/                PEFT LoRA adapter (lora methods; model/ holds the merged weights)
    RUN/model/               save_pretrained + tokenizer; loads with plain transformers; holds no prompt;
                             README.md: its model card (base model, method, data, selection; eval after `promot eval`)
    RUN/prompt/              PEFT prompt-tuning adapter (methods with a prompt)
    RUN/prompts/<name>/      carried prompts (sequential training) and multi-task prompts
    RUN/validation.jsonl     the validation examples selection scored, as the model read them (one task per line's
                             `task`): what `promot eval`'s own-data score and export's probes use, wherever the data is
    RUN/run.json             the run record (`RunRecord`), written last: the run is complete
    RUN/eval.json, flips.jsonl, flips.md    written by `promot eval`
    RUN/export/              written by `promot export` (default --out): a plain HF model, prompts as added tokens

Everything is written to a temporary name and renamed, so a crash never leaves a complete-looking half file.

Outside a run: `promot compare --seeds 0,1,2` puts each method's run for seed s at OUT/<method>/seed-<s> (`seed_dir`);
the report names such a run `<method>/seed-<s>` and pools a method's seeds (`seed_of`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from promot.errors import CheckpointError

CONFIG = "config.yaml"
DATA_FINGERPRINT = "data.sha256"
CONFIG_FINGERPRINT = "config.fingerprint.json"
METRICS = "metrics.jsonl"
RUN_INFO = "run.json"
EVAL = "eval.json"
FLIPS = "flips.jsonl"
FLIPS_MD = "flips.md"
MODEL = "model"
PROMPT = "prompt"
PROMPTS = "prompts"
LORA = "lora"
STAGE1 = "stage1"
STAGE2 = "stage2"
WISE_FT = "wise-ft"
"""run.json `stages` key and metrics.jsonl `stage` of WiSE-FT's α grid (θ = α·θ_tuned + (1−α)·θ_base)."""
VALIDATION = "validation.jsonl"
MODEL_CARD = "README.md"
EXPORT = "export"
"""`promot export`'s default output: the tuned model with every prompt as added tokens, for any inference server."""

# Inside a stage folder.
STAGING = ".staging"
"""Checkpoints are written under <stage>/.staging/checkpoint-N and renamed into place when complete."""
PROMOT_STATE = "promot_state.json"
SELECTED = "selected.safetensors"


def stage1_name(task: str | None = None) -> str:
    """stage1, or a multi-task run's per-task stage 1 folder (stage1-<task>)."""
    return STAGE1 if task is None else f"{STAGE1}-{task}"


def lock_path(run_dir: str | Path) -> Path:
    """The run directory's writer lock: `.NAME.lock` beside it, so deleting RUN (overwrite) keeps the lock."""
    run = Path(os.path.realpath(run_dir))  # `runs/x/`, `runs/./x` and a symlink to it: one directory, one lock
    return run.parent / f".{run.name}.lock"


def best_weights(shard: int | None) -> str:
    """Best-so-far weights in a checkpoint: one file, or under FSDP2 one per process (each holds its shards)."""
    return "best_so_far.safetensors" if shard is None else f"best_so_far.{shard}.safetensors"


def candidate_weights(step: int, shard: int | None) -> str:
    """A checkpoint selection may still keep, saved in a later checkpoint (under FSDP2 one file per process)."""
    return f"candidate-{step}.safetensors" if shard is None else f"candidate-{step}.{shard}.safetensors"


def prompts_path(name: str) -> str:
    """A carried or per-task prompt's folder, relative to the run directory (as run.json records it)."""
    return f"{PROMPTS}/{name}"


SEED_DIR = "seed-"


def seed_dir(seed: int) -> str:
    """The folder of one seed's run under a method's folder (compare with several seeds)."""
    return f"{SEED_DIR}{seed}"


def seed_of(run_dir: str | Path) -> int | None:
    """The seed a run directory named `seed-<s>` holds, else None."""
    name = Path(run_dir).name
    rest = name[len(SEED_DIR):]
    return int(rest) if name.startswith(SEED_DIR) and rest.isdigit() else None


@dataclass(frozen=True)
class BaseModelRef:
    source: str
    """What the user asked for: hub id, path or alias (or an earlier run's model/, sequential training)."""
    fingerprint: str = ""


@dataclass(frozen=True)
class TunedModelRef:
    path: str = MODEL
    fingerprint: str = ""
    """load_run refuses model/ when its weights no longer give this fingerprint."""


@dataclass(frozen=True)
class PromptRef:
    path: str
    length: int


@dataclass(frozen=True)
class InputsRef:
    """How the run turned an input into tokens (the data section's tokenizing keys), loaded its model and generated:
    what load_run, eval and export need to present an input as the run did, without going back to config.yaml."""

    max_length: int
    truncation: str
    target_delimiter: str
    chat_template: bool = False
    train_on: str = "all"
    system: str | None = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    bf16: bool | str = "auto"
    fp16: bool = False
    max_new_tokens: int = 8
    """The target's answer budget (eval.max_new_tokens): what selection generated."""

    @classmethod
    def of(cls, cfg) -> InputsRef:
        """A RunConfig's (duck-typed: rundir imports no config) keys that shape an input."""
        d = cfg.data
        return cls(d.max_length, d.truncation, d.target_delimiter, d.chat_template, d.train_on, d.system,
                   cfg.model.dtype, cfg.model.trust_remote_code, cfg.bf16, cfg.fp16, cfg.eval.max_new_tokens)


@dataclass(frozen=True)
class AnswerFormatRef:
    """The fine-tuned task's output format as training saw it (its label set, or none for open-ended targets):
    what leakage is measured against, so evaluation never re-reads the training data to recover it."""
    labels: tuple[str, ...] = ()
    regex: str | None = None


@dataclass(frozen=True)
class GuardOutcome:
    """The leakage guard's verdict on the kept stage-2 checkpoint (shares 0-1): run.json `guard`, the model card,
    the last line and the report."""

    base: float
    """The starting model's guard leakage."""
    leakage: float
    """The kept checkpoint's."""
    ceiling: float
    """Points over `base` that the kept checkpoint may leak before the run is flagged."""
    tolerance: float
    """Points below the best target score within which the least leaking checkpoint was kept."""
    held: bool
    step: int
    """The kept checkpoint's step."""
    best_step: int
    """The best target score's step, and its guard leakage."""
    best_leakage: float
    alpha: float | None = None
    """WiSE-FT: the kept interpolation θ = α·tuned + (1−α)·base of the `step` checkpoint, whose leakage `leakage` is."""

    def describe(self) -> str:
        at = f"step {self.step}" if self.alpha is None else f"α {self.alpha:g} of step {self.step}"
        figures = (f"guard leakage {100 * self.leakage:.1f}% at {at} (base {100 * self.base:.1f}%, "
                   f"ceiling +{self.ceiling:g} points")
        figures += ")" if self.best_step == self.step else f"; best target step {self.best_step}: " \
                                                           f"{100 * self.best_leakage:.1f}%)"
        if self.held:
            return figures
        return (f"NOT PROTECTED: without the prompt the model answers generic requests in the target's format: "
                f"{figures}")


@dataclass(frozen=True)
class RunRecord:
    """run.json, typed: written once by the pipeline (last, so its presence means 'complete'), read by every
    command. Everything training knows that a reader needs is here, so no reader re-derives it from the config."""

    method: str
    base_model: BaseModelRef
    model: TunedModelRef = TunedModelRef()
    prompt: PromptRef | None = None
    """The run's own prompt (prompt/), None for methods without one and for multi-task runs (see `prompts`)."""
    prompts: dict[str, str] = field(default_factory=dict)
    """Named prompts: multi-task prompts and carried ones (sequential training), name → folder in the run."""
    prompt_after_bos: bool = True
    """The prompt sits right after the BOS the tokenizer adds itself (`prompt.prompt_bos_id`); False in records
    written before that rule: their prompts go first, as they were trained."""
    tasks: tuple[str, ...] = ()
    init_from: str | None = None
    chat: bool | None = None
    """The run trained in the tokenizer's chat template (data.chat_template, or conversation records: learned from
    the data; multi-task: any task). None in records written before it: their config.yaml's data.chat_template
    says."""
    target_metric: str = "accuracy"
    stages: dict[str, dict] = field(default_factory=dict)
    """Per stage: selection metric, best score and step (WiSE-FT: best α), the scores seen; stage 1 also
    `prompt_scale` (`promot.prompt.init.prompt_scale`)."""
    answer_format: AnswerFormatRef | None = None
    inputs: InputsRef | None = None
    """None in records written before it: their config.yaml says (`promot.runs.run_inputs`)."""
    guard: GuardOutcome | None = None
    """The leakage guard's verdict on the kept stage-2 checkpoint (None: no guard ran)."""
    trained_data: tuple[str, ...] = ()
    """The datasets trained on, by name (a file's name before its first dot, an hf: config, the task names):
    how `promot eval` finds the headline target among a suite's fine-tuning formats."""
    data_fingerprint: str = ""
    seconds: float = 0.0
    promot_version: str = ""

    def trained_in_chat(self, config_chat_template: bool) -> bool:
        """Whether the run's inputs are in the chat template: the record's word, else (older records) the config's
        `data.chat_template`, which those runs wrote back after seeing conversations."""
        return self.chat if self.chat is not None else bool(config_chat_template)

    @classmethod
    def from_json(cls, data: dict) -> RunRecord:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["base_model"] = BaseModelRef(**(data.get("base_model") or {"source": ""}))
        if data.get("model"):
            kw["model"] = TunedModelRef(**data["model"])
        if data.get("prompt"):
            kw["prompt"] = PromptRef(**data["prompt"])
        if data.get("answer_format"):
            fmt = data["answer_format"]
            kw["answer_format"] = AnswerFormatRef(tuple(fmt.get("labels") or ()), fmt.get("regex"))
        if data.get("inputs"):
            kw["inputs"] = InputsRef(**data["inputs"])
        if data.get("guard"):
            kw["guard"] = GuardOutcome(**data["guard"])
        kw["tasks"] = tuple(data.get("tasks") or ())
        kw["trained_data"] = tuple(data.get("trained_data") or ())
        kw["prompts"] = dict(data.get("prompts") or {})
        kw["prompt_after_bos"] = bool(data.get("prompt_after_bos", False))
        return cls(**kw)

    def to_json(self) -> dict:
        """run.json's content: plain JSON types (lists, not tuples), as `json.loads` gives them back."""
        return json.loads(json.dumps(asdict(self)))


def read_run_info(run_dir: str | Path) -> RunRecord:
    """run.json as a RunRecord: refused when missing (the run is not finished) or unreadable."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a finished promot run (no {RUN_INFO})")
    try:
        return RunRecord.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None
    except (TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a promot run record ({e})") from None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl's records ([] when there is none)."""
    return _jsonl(Path(run_dir) / METRICS)


def read_flips(run_dir: str | Path) -> list[dict]:
    """flips.jsonl's records ([] before `promot eval` ran)."""
    return _jsonl(Path(run_dir) / FLIPS)
