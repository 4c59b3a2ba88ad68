"""The run configuration's typed sections: one frozen dataclass per YAML section, each key documented where it is
declared (`promot train --help` prints these docstrings). Loading, overrides and validation: config.py, which
re-exports every class here. The method rooms' sections (`lora`, `replay`, `wise_ft`, `l2_sp`, `freeze`,
`value_only`, `sdft`) are declared by their rooms in promot/methods/."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from promot.methods.freeze import FreezeConfig
from promot.methods.l2_sp import L2SpConfig
from promot.methods.lora import LoraConfig
from promot.methods.replay import ReplaySettings
from promot.methods.sdft import SdftConfig
from promot.methods.value_only import ValueOnlyConfig
from promot.methods.wise_ft import WiseFtConfig

# The keys that take one of a few words: declared as Literal types, so the type check (validation.py) refuses any
# other word in one line naming the choices, and no check restates them.
Dtype = Literal["float32", "bfloat16", "float16"]
Truncation = Literal["left", "error"]
PromptInit = Literal["vocab", "uniform", "text", "normal"]
Optimizer = Literal["adafactor", "adamw"]
LrScheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                      "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                      "warmup_stable_decay", "greedy"]
"""transformers' SchedulerType values (spelled out: config stays light; tests/test_config.py checks they match)."""
Metric = Literal["accuracy", "exact_match", "bleu"]
Mixing = Literal["proportional", "temperature", "explicit"]


@dataclass(frozen=True)
class ModelConfig:
    name: str = ""
    """Hub id, local directory, a `.gguf` file, or a packaged alias (`smollm2-135m-instruct`, `gemma-3-270m`)."""
    dtype: Dtype = "float32"
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
    truncation: Truncation = "left"
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
    init: PromptInit = "vocab"
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
    optimizer: Optimizer = "adafactor"
    """`adafactor` (paper, fixed lr, no relative step) or `adamw`."""
    scale_parameter: bool = False
    """Adafactor only: scale each step by the RMS of the weight it updates (T5X's multiply_by_parameter_scale, the
    paper's stage-2 setting: lr 1e-3 moves each weight by ~0.1% of its size per step). Off, every weight moves by
    ~lr per step whatever its size."""
    lr_scheduler: LrScheduler = "constant_with_warmup"
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
    metric: Metric = "accuracy"
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
    metric: Metric | None = None
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
    gemma-3-270m measurements (docs/history/gemma-3-270m-base-has-a.md): at lr 1e-4 the weights of plain
    fine-tuning *and* ProMoT collapse to the target's format within 20 steps, warmup or not; 3e-5 with warmup
    learns the target and keeps ICL."""
    tasks: list[TaskConfig] = field(default_factory=list)
    """Multi-task ProMoT: one prompt per task (stage 1 trains each alone), stage 2 on the task mixture with every
    example carrying its own task's frozen prompt. When set, `data` is unused."""
    mixing: Mixing = "proportional"
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
