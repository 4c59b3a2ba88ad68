"""Run configuration: YAML data in, a validated, frozen-by-convention dataclass tree out.

`load_config(path, overrides)` reads YAML, applies `a.b=c` overrides (values parsed as YAML), rejects unknown
keys with a suggestion and collects every invalid value into one error line before anything heavy is loaded.
The method rooms' sections (`lora`, `replay`, `wise_ft`, `l2_sp`, `freeze`, `value_only`, `sdft`) are declared, and checked, by their rooms in
promot/methods/; `validate` gathers their problems with the rest.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promot import methods
from promot.errors import ConfigError
from promot.methods.freeze import FreezeConfig
from promot.methods.l2_sp import L2SpConfig
from promot.methods.lora import LoraConfig
from promot.methods.replay import ReplaySettings
from promot.methods.sdft import SdftConfig
from promot.methods.value_only import ValueOnlyConfig
from promot.methods.wise_ft import WiseFtConfig
from promot.validation import UniqueKeyLoader, checked_config, field_types, optional_of

METHODS = tuple(methods.METHODS)
"""The method names (the table: promot/methods/__init__.py)."""
OPTIMIZERS = {"adafactor": "adafactor", "adamw": "adamw_torch"}
"""Our optimizer names → Trainer's `optim`. Trainer's `adafactor` is T5X-style: fixed lr, no relative step, no
parameter scaling (`scale_parameter` adds it)."""
PROMPT_INITS = ("vocab", "uniform", "text", "normal")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")
"""transformers' SchedulerType values (spelled out: config stays light; tests/test_config.py checks they match)."""
METRICS = ("accuracy", "exact_match", "bleu")
MAX_PROMPT_LENGTH = 4096


@dataclass(frozen=True)
class ModelConfig:
    name: str = ""
    """Hub id, local directory, a `.gguf` file, or a packaged alias (`smollm2-135m-instruct`, `gemma-3-270m`)."""
    dtype: str = "float32"
    """Weights dtype while training; bf16 autocast is the top-level `bf16`."""
    trust_remote_code: bool = False
    """Run model code shipped with a checkpoint. Off unless you trust the checkpoint."""
    init_from: str | None = None
    """Sequential training: start from this finished run's tuned model instead of `name`. The earlier run's
    prompts stay usable on the new model (saved again under prompts/<earlier run's name>/)."""


@dataclass(frozen=True)
class DataConfig:
    train: str = ""
    """.jsonl, .json (array or lines), .jsonl.gz / .json.gz, .csv, .parquet, or `hf:<dataset>[:<config>]`."""
    format: str = "auto"
    """Record shape: auto (from its keys) | prompt-completion | messages | alpaca | sharegpt (README: Data)."""
    columns: dict = field(default_factory=dict)
    """Renamed fields, ours → the file's, e.g. {messages: dialog, role: speaker, content: text} (README: Data)."""
    roles: dict = field(default_factory=dict)
    """The file's role names → system | user | assistant (human, gpt built in), e.g. {bot: assistant}."""
    train_on: str = "all"
    """Conversations: the loss falls on `all` assistant turns, or only the `last` (exemplars from `shots` never)."""
    system: str | None = None
    """A system prompt for every conversation that has none (also for `chat_template: true` records)."""
    validation: str | None = None
    """Held-out file for checkpoint selection; default: the last `validation_size` training records."""
    validation_size: int = 64
    """Records held out from `train` for selection when `validation` is not given (at most a fifth)."""
    train_split: str = "train"
    """Split names for `hf:` datasets and `datasets` save_to_disk folders holding a DatasetDict."""
    validation_split: str = "validation"
    template: str | None = None
    """Input template over named columns, e.g. "{premise} question: {hypothesis} answer:"; default: `prompt`."""
    completion: str = "{completion}"
    """Target template over named columns, e.g. "{label}"."""
    target_delimiter: str = " "
    """Inserted between input and target (lm-eval's convention)."""
    chat_template: bool = False
    """Train in the chat template as at inference: a record is a user + assistant turn (conversations set this)."""
    max_length: int = 256
    """Token budget for input + target (the soft prompt adds its own length on top)."""
    truncation: str = "left"
    """What to do with an input over budget: `left` drops its oldest tokens, `error` refuses. Targets never shrink."""
    shots: int = 0
    """k exemplars from the training split placed before each input (ProMoT + k-shot; in a chat, earlier turns)."""
    shot_separator: str = "\n\n"
    """Between exemplars, and between the last exemplar and the input."""
    packing: bool = False
    """Refused: each example needs its own soft prompt; packed ones would share one and attend across examples."""


@dataclass(frozen=True)
class PromptConfig:
    length: int = 20
    """Number of virtual tokens P (paper: 100 for T5, 50 for PaLM)."""
    init: str = "vocab"
    """`vocab` (embeddings of ordinary tokens sampled from the first 5000 ids: no special, added, `<...>`-shaped or
    byte tokens), `uniform` (paper's code base: U[0, 0.5)), `text`, `normal`."""
    init_text: str | None = None
    """The text whose embeddings initialise the prompt when `init: text`."""
    from_adapter: str | None = None
    """Start from an existing PEFT prompt-tuning adapter directory instead of a fresh init."""


@dataclass(frozen=True)
class StageConfig:
    steps: int = 100
    """Optimizer steps."""
    lr: float = 1e-4
    """Peak learning rate."""
    optimizer: str = "adafactor"
    """`adafactor` (paper, fixed lr, no relative step) or `adamw`."""
    scale_parameter: bool = False
    """Adafactor only: scale each step by the RMS of the weight it updates (T5X's multiply_by_parameter_scale, the
    paper's stage-2 setting: lr 1e-3 moves each weight by ~0.1% of its size per step). Off, every weight moves by
    ~lr per step whatever its size."""
    lr_scheduler: str = "constant_with_warmup"
    """Any transformers scheduler name (constant_with_warmup, linear, cosine, ...)."""
    warmup_steps: float = 0
    """Linear warmup: a step count, or a fraction of `steps` when below 1 (transformers' convention)."""
    weight_decay: float = 0.0
    batch_size: int = 8
    """Per-device batch size; the global batch is batch_size x grad_accum x processes."""
    grad_accum: int = 1
    eval_every: int = 0
    """Score the target task on validation every N steps and keep the best checkpoint (0: only at the end)."""
    eval_on_start: bool = True
    """Also score step 0, so a stage that only makes things worse keeps its starting point."""
    save_every: int = 500
    """Write a resumable checkpoint every N steps (0: never; Trainer's default 500). `promot train --resume RUN`
    continues from the last one."""
    save_total_limit: int | None = None
    """Keep only the newest N checkpoints of this stage (None: all, as Trainer)."""
    label_smoothing: float = 0.0
    """Paper stage 2: 0.1."""
    dropout: float | None = None
    """Override the model's dropout probabilities for this stage (paper stage 2: 0.1); None keeps the config's."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    freeze_embeddings: bool = False
    """Stage 2, full fine-tuning: keep the input embeddings (and a head tied to them) frozen. Saves their gradient
    and optimizer state — most of a small model with a large vocabulary (gemma-3-270m: 168 M of 268 M weights)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% more compute. Stage 1 benefits most, since
    with the model frozen its memory is almost all activations."""


@dataclass(frozen=True)
class EvalConfig:
    metric: str = "accuracy"
    """Target-task metric used for checkpoint selection: `accuracy` (first word), `exact_match`, `bleu`."""
    max_new_tokens: int = 8
    """Generation budget when scoring the target task."""
    batch_size: int = 16
    limit: int | None = None
    """Score at most this many validation records per selection round."""


@dataclass(frozen=True)
class MonitorConfig:
    tasks: list[str] = field(default_factory=list)
    """lm-eval tasks for the specialization monitor's ICL probe during stage 2 (empty: off), e.g. [mini]."""
    every: int = 25
    """Probe every N steps (and at step 0)."""
    shots: int = 1
    limit: int = 24
    """Items per task per probe: keep it cheap."""
    alignment_every: int = 0
    """Log gradient alignment (paper §3.3: cosine of the gradients on real vs shuffled target labels, per module of
    the last block) every N stage-2 steps and at step 0; 0: off. `promot diagnose gradient-alignment` sets it."""
    alignment_batches: int = 2
    """Fixed training batches the alignment is summed over."""
    alignment_layers: int = 1
    """How many of the last blocks the alignment covers."""
    include_path: list[str] = field(default_factory=list)
    """Extra folders of lm-eval task YAMLs."""
    apply_chat_template: bool = False
    """Probe through the tokenizer's chat template, exemplars as turns (lm-eval's apply_chat_template +
    fewshot_as_multiturn): how an instruct model's ICL is used and should be watched."""


@dataclass(frozen=True)
class GuardConfig:
    """The leakage guard: at step 0 and every selection step of stage 2, the bare model (no prompt; in the chat
    template when the run trains in it) answers generic requests greedily, and the share of answers in the target's
    format is that checkpoint's guard leakage. Selection keeps the least leaking checkpoint among those whose target
    score is within `target_tolerance` of the best; a kept checkpoint leaking over `ceiling` points more than the
    starting model is flagged (the last line, run.json, the model card, the report)."""

    enabled: bool = True
    """Off: selection looks at the target score only, and nothing is flagged."""
    data: str | None = None
    """Your own requests: a .txt file (one per line), or a file of prompts or conversations in any shape `data.train`
    accepts (read with `data`'s format, columns and roles). Default: the 100 shipped instructions and questions
    (promot/evaluate/guard_requests.jsonl)."""
    format_regex: str | None = None
    """What an answer in the target's format matches, instead of the label set read from the training targets;
    needed for open-ended targets, which have no label set (without it the guard is off)."""
    target_tolerance: float | None = None
    """Points below the best target score that still compete on guard leakage. Default: the best score's own 95%
    interval over the validation items (Wilson)."""
    ceiling: float = 5.0
    """Points of guard leakage over the starting model's that the kept checkpoint may show unflagged."""
    limit: int | None = None
    """Ask the first N requests only."""
    max_new_tokens: int | None = None
    """The answer budget. Default: the target's own (eval.max_new_tokens): leakage asks whether an answer starts in
    the target's format, and that budget holds the target's answers."""


@dataclass(frozen=True)
class ReplayConfig(ReplaySettings, DataConfig):
    """Methods replay, promot-replay: data mixed into stage 2 (any dataset `data` can read), without the prompt: a
    data section's keys, then the replay room's own (`fraction`: promot/methods/replay.py)."""


@dataclass(frozen=True)
class TaskConfig:
    name: str = ""
    """The task's name: its prompt is saved as prompts/<name>/ and picked by that name at inference."""
    data: DataConfig = field(default_factory=DataConfig)
    metric: str | None = None
    """Selection metric for this task (default: eval.metric)."""
    max_new_tokens: int | None = None
    """Generation budget when scoring this task (default: eval.max_new_tokens)."""
    weight: float | None = None
    """Share of stage-2 batches for `mixing: explicit`."""


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: str = "promot"
    """The method: ProMoT, a baseline or a rival, a row of promot.methods.METHODS (README: Methods)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(steps=100, lr=0.3))
    """Prompt tuning (model frozen). Paper: Adafactor, lr 0.2-0.3."""
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=100, lr=3e-5, warmup_steps=0.1))
    """Model tuning, shared by every method that trains weights so comparisons are fair. Defaults from the
    gemma-3-270m measurements (docs/RESULTS.md): at lr 1e-4 the weights of plain fine-tuning *and* ProMoT collapse
    to the target's format within 20 steps, warmup or not; 3e-5 with warmup learns the target and keeps ICL."""
    tasks: list[TaskConfig] = field(default_factory=list)
    """Multi-task ProMoT: one prompt per task (stage 1 trains each alone), stage 2 on the task mixture with every
    example carrying its own task's frozen prompt. When set, `data` is unused."""
    mixing: str = "proportional"
    """Stage-2 task mixture: `proportional` (to training-set sizes), `temperature` (sizes^(1/T)), `explicit`
    (tasks[].weight)."""
    mixing_temperature: float = 2.0
    lora: LoraConfig = field(default_factory=LoraConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Methods replay, promot-replay: a data section (train, template, completion, ...) plus `fraction`; every
    record is trained on (nothing is selected on replay data, so its validation keys are unused)."""
    wise_ft: WiseFtConfig = field(default_factory=WiseFtConfig)
    l2_sp: L2SpConfig = field(default_factory=L2SpConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    value_only: ValueOnlyConfig = field(default_factory=ValueOnlyConfig)
    sdft: SdftConfig = field(default_factory=SdftConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    output_dir: str = "runs/run"
    """The run directory (see README: model/, prompt/, run.json ...)."""
    overwrite: bool = False
    """Replace an earlier run in output_dir instead of refusing (never a folder that is no run, or holds an input)."""
    seed: int = 0
    """Seeds data order, prompt init, k-shot sampling and dropout."""
    bf16: bool | str = "auto"
    """bf16 autocast: `auto` uses it where the hardware runs bf16 natively (CUDA with bf16, CPUs with AVX-512
    bf16/AMX) and fp32 elsewhere (an AVX2-only CPU emulates bf16, ~20x slower); true forces it, false never."""
    fp16: bool = False
    """fp16 autocast with loss scaling, for CUDA GPUs without bf16 (V100, T4); weights stay float32."""
    report_to: list[str] = field(default_factory=list)
    """Trainer integrations, e.g. [tensorboard]."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def input_paths(cfg: RunConfig) -> list[str]:
    """Every local file or folder the run reads (model, earlier run, data, adapter, task folders), so that an
    `overwrite` of output_dir never deletes one of them."""
    datas = [cfg.data, cfg.replay, *(t.data for t in cfg.tasks)]
    named = [cfg.model.name, cfg.model.init_from, cfg.prompt.from_adapter, *cfg.monitor.include_path,
             *(path for d in datas for path in (d.train, d.validation))]
    return [p for p in named if p and not p.startswith("hf:") and Path(p).exists()]


# Names users bring from TrainingArguments / PEFT, mapped to ours for suggestions.
_HF_NAMES = {
    "learning_rate": "lr", "max_steps": "steps", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "optim": "optimizer", "num_virtual_tokens": "length",
    "model_name_or_path": "name", "label_smoothing_factor": "label_smoothing", "eval_steps": "eval_every",
    "save_steps": "save_every", "lr_scheduler_type": "lr_scheduler",
}


def _suggest(key: str, choices: list[str]) -> str:
    aliases = {k: v for k, v in _HF_NAMES.items() if v in choices}
    close = difflib.get_close_matches(key, choices + list(aliases), n=1)
    if close:
        return f" (did you mean '{aliases.get(close[0], close[0])}'?)"
    return f" (known: {', '.join(sorted(choices))})"


def _coerce(value: Any, ftype: Any) -> Any:
    """PyYAML reads `3e-5` as a string (YAML 1.1 wants `3.0e-5`); accept it where a float is expected."""
    if isinstance(value, str) and (optional_of(ftype) or ftype) is float:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, recursing into nested dataclasses; unknown keys are errors."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    fields, hints = {f.name: f for f in dataclasses.fields(cls)}, field_types(cls)
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{path}'{_suggest(str(key), list(fields))}")
        ftype = hints[key]
        sub = ftype if dataclasses.is_dataclass(ftype) else None
        if ftype == list[TaskConfig]:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list of tasks")
            kwargs[key] = [_build(TaskConfig, v, f"{path}[{i}]") for i, v in enumerate(value)]
            continue
        if ftype in (str, str | None) and isinstance(value, (dict, list)):
            kind = "a mapping" if isinstance(value, dict) else "a list"
            raise ConfigError(f"{path}: expected a string, got {kind} (quote it: YAML reads {{...}} as a mapping)")
        kwargs[key] = _build(sub, value, path) if sub else _coerce(value, ftype)
    if cls is RunConfig:
        # A partial stage mapping keeps the other stage-specific defaults (stage 1's lr differs from stage 2's).
        for stage in ("stage1", "stage2"):
            defaults = dataclasses.asdict(fields[stage].default_factory())
            kwargs[stage] = _build(StageConfig, {**defaults, **(raw.get(stage) or {})}, stage)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str) -> None:
    if "=" not in dotted:
        raise ConfigError(f"override '{dotted}' must look like key.sub=value")
    key, _, text = dotted.partition("=")
    parts = key.strip().split(".")
    try:
        value = yaml.load(text, Loader=UniqueKeyLoader) if text else ""
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)) and _field_type(parts) in (str, str | None):
        value = text  # `data.template={question}`: the literal template, not a YAML mapping
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def _field_type(parts: list[str]) -> Any:
    """The declared type of dotted key `parts` (e.g. data.template → `str | None`); None if not a known key."""
    cls: type | None = RunConfig
    ftype = None
    for part in parts:
        hints = field_types(cls) if cls else {}
        if part not in hints:
            return None
        ftype = hints[part]
        cls = ftype if dataclasses.is_dataclass(ftype) else None
    return ftype


def validate(cfg: RunConfig) -> RunConfig:
    """Check every value; raise one ConfigError listing all problems (validation.py: types, ranges; then these, and
    every method room's: promot/methods/)."""
    return checked_config(cfg, _value_issues)


def _value_issues(cfg: RunConfig) -> list[str]:
    """Every combination problem of a well-typed config (bf16 is parsed, and checked against fp16, by the caller)."""
    issues = []

    def check(ok: bool, msg: str) -> None:
        if not ok:
            issues.append(msg)

    check(bool(cfg.model.name) or bool(cfg.model.init_from), "model.name (or model.init_from) is required")
    check(bool(cfg.data.train) or bool(cfg.tasks), "data.train (or tasks) is required")
    names = [t.name for t in cfg.tasks]
    check(all(names) and len(set(names)) == len(names), "tasks[].name must be set and unique")
    check(all(t.data.train for t in cfg.tasks), "tasks[].data.train is required")
    check(cfg.mixing in ("proportional", "temperature", "explicit"),
          f"mixing '{cfg.mixing}' is not one of proportional, temperature, explicit")
    check(cfg.mixing != "explicit" or all((t.weight or 0) > 0 for t in cfg.tasks),
          "mixing: explicit needs a positive tasks[].weight for every task")
    check(not cfg.tasks or cfg.method in ("promot", "finetune", "prompt-tuning"),
          "multi-task training supports method promot, finetune or prompt-tuning")
    check(not cfg.tasks or not cfg.monitor.alignment_every, "monitor.alignment_every is for single-task runs")
    check(all(t.metric is None or t.metric in METRICS for t in cfg.tasks), f"tasks[].metric must be one of {', '.join(METRICS)}")
    check(cfg.method in METHODS, f"method '{cfg.method}' is not one of {', '.join(METHODS)}")
    check(cfg.prompt.init in PROMPT_INITS, f"prompt.init '{cfg.prompt.init}' is not one of {', '.join(PROMPT_INITS)}")
    check(cfg.prompt.init != "text" or bool(cfg.prompt.init_text), "prompt.init 'text' needs prompt.init_text")
    check(isinstance(cfg.prompt.length, int) and cfg.prompt.length > 0, "prompt.length must be a positive integer")
    check(not isinstance(cfg.prompt.length, int) or cfg.prompt.length <= MAX_PROMPT_LENGTH,
          f"prompt.length must be at most {MAX_PROMPT_LENGTH} virtual tokens (the paper uses 50-100)")
    check(cfg.data.truncation in ("left", "error"), "data.truncation must be 'left' or 'error'")
    check(not cfg.data.packing and not any(t.data.packing for t in cfg.tasks),
          "data.packing is refused: each example needs its own soft prompt in front of it, and packed examples "
          "would share one and attend across example boundaries")
    check(cfg.eval.metric in METRICS, f"eval.metric '{cfg.eval.metric}' is not one of {', '.join(METRICS)}")
    check(cfg.model.dtype in ("float32", "bfloat16", "float16"), "model.dtype must be float32, bfloat16 or float16")
    for name in ("stage1", "stage2"):
        st: StageConfig = getattr(cfg, name)
        check(st.optimizer in OPTIMIZERS, f"{name}.optimizer '{st.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        check(st.lr_scheduler in LR_SCHEDULERS,
              f"{name}.lr_scheduler '{st.lr_scheduler}' is not one of {', '.join(LR_SCHEDULERS)}")
        check(not st.scale_parameter or st.optimizer == "adafactor",
              f"{name}.scale_parameter is an Adafactor option (optimizer is {st.optimizer})")
    g = cfg.guard
    check(g.format_regex is None or (g.format_regex != "" and _compiles(g.format_regex)),
          f"guard.format_regex is not a valid, non-empty regex: {g.format_regex!r}")
    check(g.data is None or g.data.startswith("hf:") or Path(g.data).is_file(), f"guard.data: {g.data}: file not found")
    return [*issues, *methods.problems(cfg)]  # each method room's own settings (promot/methods/)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def load_config(source: str | Path | dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (or mapping) + dotted overrides → validated RunConfig."""
    if source is None:
        tree: dict = {}
    elif isinstance(source, dict):
        tree = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    for item in overrides or []:
        _set_dotted(tree, item)
    try:
        cfg = _build(RunConfig, tree, "")
    except TypeError as e:
        raise ConfigError(f"config: {e}") from None
    return validate(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
