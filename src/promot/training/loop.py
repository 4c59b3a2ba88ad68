"""The one training loop both stages share: HF `Trainer`, plus what ProMoT needs on top of it.

Trainer brings accelerate (DDP/FSDP/DeepSpeed), progress bars, `report_to`, schedulers and resumable
checkpoints. We add: (1) evaluation = target-task score by generation (in stage 2, plus the leakage guard's reading),
(2) checkpoint selection that includes step 0 (selection.py: the best score, or with the guard the least leaking
checkpoint near it; the earlier on ties), (3) checkpoints that hold the model *and* the prompt
(`model/` + `prompt/`), never one without the other, (4) `metrics.jsonl`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import PrinterCallback, Trainer, TrainerCallback
from transformers.trainer_pt_utils import nested_gather
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from promot.config import RunConfig, StageConfig
from promot.data import Collator, Example, Tokenizing
from promot.distributed import is_main_process, process_index, sharding
from promot.errors import CheckpointError, DiskFullError, PromotError, TrainingError
from promot.io import disk_full, is_disk_full, settle_modes, tree_size
from promot.evaluate.guard import LeakageGuard
from promot.precision import resolve_bf16
from promot.progress import stage_progress, verbose
from promot import rundir
from promot.prompt import PromptedLM, load_prompt
from promot.rundir import METRICS, PROMOT_STATE, STAGING
from promot.training.arguments import optimizer, training_arguments
from promot.training.artifacts import save_checkpoint
from promot.training.multitask import TaskTarget, mean_target_score
from promot.training.selection import GuardPolicy, KeepBest, best_note
from promot.training.stage_settings import stage_settings
from promot.training.preempt import StopOnSignal, interrupted
from promot.training.update_size import UpdateSizeProbe

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StageContext:
    """What a stage needs besides the model: the run's config, data and where to write. Frozen: a stage that needs
    other rows or targets gets its own copy (`dataclasses.replace`), so no stage changes what the next one reads."""

    cfg: RunConfig
    tokenizer: object
    tokenizing: Tokenizing
    train_rows: list[dict]
    validation: list[Example]
    run_dir: Path
    callbacks: list = field(default_factory=list)
    """Extra TrainerCallbacks for every stage (timers, user hooks)."""
    monitors: tuple[TrainerCallback, ...] = ()
    """Probes of the stage that tunes the model: the specialization monitor, gradient alignment."""
    targets: list = field(default_factory=list)
    """The run's tasks (TaskTarget), what selection scores: the mean target score over them, each with its own
    prompt. Left empty, the one task of `tokenizing` and `validation` with the config's eval settings."""
    guard: LeakageGuard | None = None
    """Stage 2's leakage guard (None: off, or a target with no format to watch)."""
    guard_policy: GuardPolicy | None = None

    def __post_init__(self) -> None:
        if not self.targets and self.validation:
            ev = self.cfg.eval
            one = TaskTarget(None, 0, self.tokenizing, self.validation, ev.metric, ev.max_new_tokens, self.train_rows)
            object.__setattr__(self, "targets", [one])


@dataclass(frozen=True)
class StageHooks:
    """What a method's add-on plugs into one stage-2 run (its `before_stage2` returns it; its `after_stage2` gets it
    back): a loss of its own in place of cross-entropy on the batch's targets (sdft), a term added to every step's
    loss (l2-sp's pull toward the base weights), and whatever it keeps between the two calls (wise-ft's starting
    weights). Passed to the stage explicitly, never through the context."""

    objective: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None
    """Given the model being trained and the batch."""
    penalty: Callable[[], torch.Tensor] | None = None
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """What a stage hands back (the kept weights are restored in place): its selection, run.json's record of it,
    and under FSDP2 the kept weights' full state dict, gathered on the main process (else empty)."""

    keep: KeepBest
    record: dict
    gathered: dict = field(default_factory=dict)


class MetricsLog(TrainerCallback):
    """metrics.jsonl's one writer: every Trainer log (loss, lr, eval scores) with the stage name, and any other
    stage's rows (WiSE-FT's α curve) through `append`."""

    def __init__(self, run_dir: Path, stage: str) -> None:
        self.path, self.stage = Path(run_dir) / METRICS, stage

    def append(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"stage": self.stage, **row}) + "\n")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            self.append({"step": state.global_step, **logs})


class ResumeLogging(TrainerCallback):
    """Put Trainer's running loss and last-log step back as the checkpoint saw them, so a resumed run logs the
    same loss curve as an uninterrupted one (Trainer resets both when `train()` starts)."""

    def __init__(self, trainer: Trainer, saved: dict) -> None:
        self.trainer, self.saved = trainer, saved

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._tr_loss += self.saved["pending_loss"]
        self.trainer._globalstep_last_logged = self.saved["last_logged"]


class PromotTrainer(Trainer):
    """Trainer whose evaluation is the target-task score and whose checkpoints are `model/` + `prompt/`."""

    def __init__(self, *args, ctx: StageContext, keep: KeepBest, guard: LeakageGuard | None = None,
                 hooks: tuple[StageHooks, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ctx, self.keep, self.guard = ctx, keep, guard
        self.objective = next((h.objective for h in hooks if h.objective is not None), None)
        self.penalties = [h.penalty for h in hooks if h.penalty is not None]
        self._staging = False

    def _get_output_dir(self, trial) -> str:
        out = super()._get_output_dir(trial)
        return os.path.join(out, STAGING) if self._staging else out

    def _save_checkpoint(self, model, trial) -> None:
        """Trainer writes a checkpoint's files in place; we let it write into .staging/ and rename the finished
        folder into place, so a crash mid-save never leaves a checkpoint-N that looks complete."""
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        out = Path(self.args.output_dir)
        try:
            self._save_staged(model, trial, out, name)
        except Exception as e:
            if not is_disk_full(e):
                raise
            self._disk_full(out, name, e)  # the checkpoint's own line, whatever file inside it failed

    def _save_staged(self, model, trial, out: Path, name: str) -> None:
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        staged, final = out / STAGING / name, out / name
        shard = process_index() if sharding() == "fsdp" else None
        if shard is not None or self.args.should_save:
            self.keep.save(staged, self.state.global_step, shard)
        self.accelerator.wait_for_everyone()  # every process's RNG / optimizer / best-so-far shard is on disk
        logging_state = self.logging_state()  # a collective: every process takes part
        if self.args.should_save:
            metrics = self.ctx.run_dir / METRICS
            (staged / PROMOT_STATE).write_text(json.dumps({"keep_best": self.keep.state(self.state.global_step),
                                                           "metrics_bytes": metrics.stat().st_size if metrics.exists() else 0,
                                                           "logging": logging_state}))
            settle_modes(staged)  # Trainer's safetensors files are 0600 whatever the umask
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged, final)
            shutil.rmtree(out / STAGING, ignore_errors=True)
            rotate_checkpoints(str(out), self.args.save_total_limit)
        self.accelerator.wait_for_everyone()

    def _disk_full(self, out: Path, name: str, error: BaseException) -> None:
        """A checkpoint the disk could not hold: its staged files go, the last complete checkpoint stands, and the
        line says how much it needs and how to go on."""
        staged = out / STAGING / name
        written = tree_size(staged)
        shutil.rmtree(out / STAGING, ignore_errors=True)
        done = sorted((p for p in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.name.split("-")[-1].isdigit()),
                      key=lambda p: int(p.name.split("-")[-1]))
        needs = max(written, tree_size(done[-1]) if done else 0)
        last = f"the last checkpoint, {done[-1]}, is intact" if done else "no earlier checkpoint of this stage"
        full = disk_full(out / name, needs, f"`promot train --resume {self.ctx.run_dir}`")
        raise DiskFullError(f"{full} ({last})") from error

    def logging_state(self) -> dict:
        """Trainer's running loss since the last log (mean over processes) and that log's step. Trainer zeroes both
        on resume, so without them the first loss logged after a resume averages fewer steps than the
        uninterrupted run's."""
        pending = nested_gather(self._tr_loss.detach().clone(), self.args.parallel_mode).mean().item()
        return {"pending_loss": pending, "last_logged": self._globalstep_last_logged}

    def log_probe(self, metrics: dict[str, float]) -> None:
        """Log a probe's values from a step-end callback without swallowing this step's own loss log
        (Trainer.log → on_log clears control.should_log, which the loss log of the same step waits on)."""
        should_log = self.control.should_log
        self.log(metrics)
        self.control.should_log = should_log

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss):
            # Stop before the optimizer applies a NaN/inf update; Trainer checkpoints already on disk are kept.
            saved = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            kept = f"; last checkpoint kept: {saved}" if saved else ""
            raise TrainingError(f"{Path(self.args.output_dir).name} step {self.state.global_step + 1}: loss is "
                                f"{loss.item()} (diverged; try a lower lr){kept}")
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.objective is not None and model.training:  # evaluation scores the target, never this loss
            loss = self.objective(model, inputs)
            out = (loss, None) if return_outputs else loss
        else:
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not self.penalties:
            return out
        extra = sum(penalty() for penalty in self.penalties)
        return (out[0] + extra, out[1]) if return_outputs else out + extra

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        lm = self.accelerator.unwrap_model(self.model)
        metrics = {f"{metric_key_prefix}_target_score": score_target(lm, self.ctx)}
        if self.guard is not None:
            from promot.distributed import gathered

            with gathered(lm):
                metrics[f"{metric_key_prefix}_guard_leakage"] = self.guard.measure(lm.model)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.args.should_save:
            # Under FSDP/ZeRO-3 Trainer hands us the gathered full state dict; otherwise the module holds it.
            save_checkpoint(Path(output_dir or self.args.output_dir), self.accelerator.unwrap_model(self.model),
                            self.ctx.tokenizer, state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        with _checkpoint_errors(resume_from_checkpoint, "weights"):
            self._load_weights(resume_from_checkpoint, model)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        with _checkpoint_errors(checkpoint, "optimizer/scheduler state"):
            super()._load_optimizer_and_scheduler(checkpoint)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        with _checkpoint_errors(checkpoint, "RNG state"):
            super()._load_rng_state(checkpoint)

    def _load_weights(self, resume_from_checkpoint: str, model=None) -> None:
        if self.is_fsdp_enabled:  # Trainer's own FSDP files (the whole wrapper, prompt included), into the shards
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        lm: PromptedLM = self.accelerator.unwrap_model(model or self.model)
        folder = Path(resume_from_checkpoint)
        state = {}
        for f in sorted((folder / rundir.MODEL).glob("*.safetensors")):
            state.update(load_file(f))
        if not state:
            raise CheckpointError(f"{folder}: no model weights in checkpoint")
        if hasattr(lm.model, "peft_config"):  # a LoRA checkpoint holds the adapter only
            from peft import set_peft_model_state_dict

            unexpected = set_peft_model_state_dict(lm.model, state).unexpected_keys
        else:
            unexpected = lm.model.load_state_dict(state, strict=False).unexpected_keys  # shape mismatch: raises
        if unexpected:
            raise CheckpointError(f"{folder}: checkpoint does not fit the model ({unexpected[0]} …)")
        if lm.prompt is not None:
            with torch.no_grad():
                lm.prompt.copy_(load_prompt(folder / rundir.PROMPT).embeddings)


@contextmanager
def _checkpoint_errors(checkpoint: str | None, what: str) -> Iterator[None]:
    """A checkpoint that no longer fits (edited model or prompt shape, truncated or foreign files) is one line, not
    torch's traceback: every error while loading it becomes a CheckpointError naming the folder."""
    try:
        yield
    except PromotError:
        raise
    except Exception as e:  # torch/safetensors raise RuntimeError, ValueError, KeyError, pickle errors...
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{checkpoint}: its {what} cannot be loaded into this run ({first}); was the "
                              "config or the code changed since it was written?") from None


def score_target(lm: PromptedLM, ctx: StageContext) -> float:
    """The selection score: the target task on validation, the mean over the run's tasks (each with its prompt)."""
    ev = ctx.cfg.eval
    return mean_target_score(lm, ctx.targets, ev.batch_size, resolve_bf16(ctx.cfg.bf16, ctx.cfg.fp16), ev.limit)


def read_checkpoint_state(checkpoint: Path) -> dict:
    path = Path(checkpoint) / PROMOT_STATE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({e})") from None


def _resumed_state(keep: KeepBest, resume: str, sharded: str | None) -> dict:
    """A checkpoint's promot state, with best-so-far selection restored into `keep` (one line if it cannot be)."""
    state = read_checkpoint_state(Path(resume))
    with _checkpoint_errors(resume, "best-so-far selection or Trainer state"):
        keep.load(Path(resume), state["keep_best"], process_index() if sharded == "fsdp" else None)
        from transformers import TrainerState
        from transformers.trainer import TRAINER_STATE_NAME

        TrainerState.load_from_json(os.path.join(resume, TRAINER_STATE_NAME))  # what Trainer reads first
    return state


def _stage_metric(ctx: StageContext) -> str:
    """What selection maximises: the one task's metric, or the mean over tasks (nothing to select on: eval.metric)."""
    if len(ctx.targets) > 1:
        return "mean target score"
    return ctx.targets[0].metric if ctx.targets else ctx.cfg.eval.metric


def run_stage(name: str, lm: PromptedLM, st: StageConfig, ctx: StageContext, resume: str | None = None,
              callbacks: tuple = (), guarded: bool = False, hooks: tuple[StageHooks, ...] = ()) -> StageResult:
    """Train whatever in `lm` has requires_grad, select the best checkpoint by target score (`guarded`: and by the
    leakage guard's reading, when the run has one), restore it."""
    sharded = sharding()
    if resume is not None and sharded == "deepspeed":
        raise CheckpointError("--resume under DeepSpeed is not supported yet (single-process, DDP and FSDP2 runs are)")
    # no validation set: nothing to select on, the final weights stand
    selecting = any(t.validation for t in ctx.targets)
    with stage_settings(lm.model, st):  # put back however the stage ends
        args = training_arguments(name, st, ctx.cfg, ctx.run_dir, selecting, resume is not None)
        guard = ctx.guard if guarded and selecting else None
        frozen = not any(p.requires_grad for p in lm.model.parameters())  # only the prompt trains
        keep, update_size = KeepBest(lm, ctx.guard_policy if guard is not None else None, frozen), UpdateSizeProbe()
        metrics_log = MetricsLog(ctx.run_dir, name)
        stop = StopOnSignal()  # last of the callbacks: a signal raised by any earlier one stops this very step
        state = _resumed_state(keep, resume, sharded) if resume is not None else {}
        trainer = PromotTrainer(
            model=lm, args=args, train_dataset=ctx.train_rows, eval_dataset=ctx.validation,
            data_collator=Collator(ctx.tokenizer.pad_token_id),
            callbacks=[metrics_log, keep, update_size, *ctx.callbacks, *callbacks, stop],
            optimizer_cls_and_kwargs=optimizer(st), ctx=ctx, keep=keep, guard=guard, hooks=hooks,
        )
        if guard is not None and resume is None and not args.eval_on_start:  # the starting model's share: the base
            keep.leaks[0] = guard.measure(lm.model)
            if is_main_process():
                metrics_log.append({"step": 0, "guard_leakage": keep.leaks[0]})
        if state.get("logging"):
            trainer.add_callback(ResumeLogging(trainer, state["logging"]))
        for cb in (update_size, *ctx.callbacks, *callbacks):
            if hasattr(cb, "bind"):
                cb.bind(trainer)  # callbacks that log through the Trainer (probes: promot.probe.Probe)
        metric = _stage_metric(ctx)
        progress = None
        if not verbose():  # Trainer's printed log dicts and bars → one line for the stage
            trainer.remove_callback(PrinterCallback)
            progress = stage_progress(f"{ctx.run_dir.name} {name}")
            trainer.add_callback(progress)
        started = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=resume)
            if stop.signum:
                raise interrupted(ctx.run_dir, name, trainer.state.global_step, stop.signum)
            if selecting and (not keep.scores or keep.scores[-1][0] != trainer.state.global_step):
                trainer.evaluate()  # the final weights always compete
        except BaseException:
            if progress is not None:
                progress.close(failed=True)  # the error line stands alone
            raise
        if progress is not None:
            progress.close(best_note(keep, metric))
        keep.restore()
        # FSDP2: every process joins the gather; the main one gets the full state (on CPU)
        gathered = trainer.accelerator.get_state_dict(trainer.model) if sharded == "fsdp" else {}
    if guard is not None and is_main_process():  # what the guard adds to the stage (a resumed one: since resuming)
        metrics_log.append({"step": trainer.state.global_step, "stage_seconds": round(time.perf_counter() - started, 1),
                            "guard_seconds": round(guard.seconds, 1)})
    if keep.kept_score is not None and progress is None:
        log.info("%s: %s", name, best_note(keep, metric))
    return StageResult(keep, stage_record(keep, metric, st.lr), gathered)


def stage_record(keep: KeepBest, metric: str, lr: float) -> dict:
    """What run.json records of a stage: the kept step and score, every scored step (with the guard's reading where
    it took one), the lr it trained at, and the guard's verdict."""
    scores = [{"step": s, "target_score": v, **({"guard_leakage": keep.leaks[s]} if s in keep.leaks else {})}
              for s, v in keep.scores]
    out = {"best_step": keep.kept_step, "best_score": keep.kept_score, "metric": metric, "lr": lr, "scores": scores}
    if (outcome := keep.outcome()) is not None:
        out["guard"] = dataclasses.asdict(outcome)
    return out
