"""The pipeline behind `promot.api`: config → prepared run (model, data, initial prompt; everything validated,
nothing written) → stage 1 → stage 2 → the run directory (`write_run`, run.json last).

`promot.api.train` / `resume` call `prepare` and `run_prepared`; under `accelerate launch` every process runs them and
only the main process writes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from promot import __version__, rundir
from promot.config import RunConfig, TaskConfig, dump_config, input_paths, load_config
from promot.data import TaskData, Tokenizing, load_task_data
from promot.data.saved import write_examples
from promot.evaluate.guard import load_requests
from promot.distributed import full, is_main_process, sharding, wait_for_everyone
from promot.errors import ConfigError
from promot.io import atomic_write_json, atomic_write_text, check_replaceable, disk_full, is_disk_full, occupied
from promot.models import fingerprint, load_model
from promot.precision import check_weights_dtype
from promot.prompt import check_compatible, init_prompt, load_prompt, save_prompt
from promot.prompt.init import row_norm
from promot.prompt.soft_prompt import inner_state
from promot.rundir import read_run_info
from promot.runs import carried_prompts, load_tuned_model
from promot.model_card import write_model_card
from promot.training.artifacts import model_dir_for_peft, save_carried, save_model
from promot.training.loop import StageContext
from promot.training.environment import check_environment, check_model
from promot.training.methods import METHODS
from promot.training.prepared import Prepared
from promot.training.stage2_watch import answer_format, guard_outcome, leakage_guard, monitors
from promot.training.resume import config_fingerprint, load_stage_result, resume_point, save_stage_result
from promot.training import stage1_reuse
from promot.training.stage1_prompt_tuning import train_prompt
from promot.training.stage2_model_tuning import train_model

log = logging.getLogger(__name__)


def _initial_prompt(cfg: RunConfig, model, tokenizer, base_fp: str) -> torch.Tensor:
    if cfg.prompt.from_adapter:
        saved = load_prompt(cfg.prompt.from_adapter)
        check_compatible(saved, model, base_fp, cfg.prompt.from_adapter)
        return saved.embeddings
    if cfg.prompt.init == "text" and not tokenizer(cfg.prompt.init_text, add_special_tokens=False)["input_ids"]:
        raise ConfigError("prompt.init_text tokenizes to nothing")
    # The paper's "random prompt" ablation is uniform-initialised whatever the prompt.init default is.
    kind = "uniform" if cfg.method == "random-prompt" else cfg.prompt.init
    return init_prompt(kind, cfg.prompt.length, model, tokenizer, cfg.prompt.init_text, cfg.seed)


def check_output_dir(cfg: RunConfig) -> Path:
    """Refuse to clobber a non-empty directory unless overwrite is set, and even then anything but an earlier run
    that holds none of this run's inputs (checked before anything loads)."""
    run_dir = Path(cfg.output_dir)
    if run_dir.is_file():
        raise ConfigError(f"{run_dir}: output_dir is a file; choose a directory")
    if occupied(run_dir) and not cfg.overwrite:
        raise ConfigError(f"{run_dir}: output directory exists and is not empty (set overwrite=true)")
    if cfg.overwrite:
        check_replaceable(run_dir, rundir.CONFIG_FINGERPRINT, "a promot run", input_paths(cfg))
    return run_dir


def claim_output_dir(cfg: RunConfig) -> Path:
    run_dir = check_output_dir(cfg)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


def prepare(config: RunConfig | str | Path | dict, overrides: list[str] | None = None,
            resuming: bool = False) -> Prepared:
    """Config → model, data (every record tokenized, so a bad line fails here) and initial prompt."""
    from transformers import set_seed

    cfg = config if isinstance(config, RunConfig) else load_config(config, overrides)
    if not resuming:
        check_output_dir(cfg)
    method = METHODS[cfg.method]
    check_weights_dtype(cfg.model.dtype, bool(method.stage2 and method.stage2.trains_all_weights))
    check_environment(cfg, method)
    set_seed(cfg.seed)
    # A bad guard file is one line before the model loads.
    requests = load_requests(cfg.guard.data, cfg.data, cfg.guard.limit) if cfg.guard.enabled else None
    loaded = _load_start_model(cfg)
    carried = carried_prompts(cfg.model.init_from, read_run_info(cfg.model.init_from)) if cfg.model.init_from else {}
    model, tok = loaded.model, loaded.tokenizer
    base_fp = fingerprint(model, tok)
    tasks, data, longest = _task_plan(cfg, model, tok)
    check_model(cfg, method, model, longest)
    rows = tasks[0].rows
    if cfg.tasks:  # several tasks declared: stage 2 trains on their mixture, each row tagged with its task
        from promot.training.multitask import mixing_weights, mixture, stage2_examples

        weights = mixing_weights([len(t.rows) for t in tasks], cfg.mixing, cfg.mixing_temperature,
                                 [t.weight for t in cfg.tasks])
        rows = mixture([t.rows for t in tasks], weights, stage2_examples(cfg), cfg.seed)
    prompts = [_initial_prompt(dataclasses.replace(cfg, seed=cfg.seed + i), model, tok, base_fp)
               for i in range(len(tasks))] if method.prompt else None
    stage2_rows = rows
    for addon in method.addons:  # replay: the target's rows mixed with other data
        stage2_rows = addon.stage2_rows(stage2_rows, cfg, tok, bool(model.config.is_encoder_decoder))
    return Prepared(cfg, method, loaded.source, model, tok, data, rows, base_fp, prompts, carried, tasks, stage2_rows,
                    requests)


def _task_plan(cfg: RunConfig, model, tok) -> tuple[list, TaskData, int]:
    """The run's tasks, N ≥ 1 (a single-task run's one task is `data`, scored with `eval`'s metric): each one's data
    read and every record tokenized (a bad line fails here); the data they train on together (a single task's
    validation set kept with it, as run.json's readers expect); and the longest tokenized example, in tokens."""
    from promot.training.multitask import TaskTarget

    seq2seq = bool(model.config.is_encoder_decoder)
    declared = cfg.tasks or [TaskConfig(name="", data=cfg.data)]  # a single-task run: one unnamed task, `data`
    tasks, train, chat, longest = [], [], False, 0
    for i, t in enumerate(declared):
        data = load_task_data(t.data, tok, cfg.seed)
        tokenizing = Tokenizing.for_data(t.data, tok, seq2seq, data.chat)
        rows = tokenizing.encode_all(data.train)
        held_out = tokenizing.encode_all(data.validation)  # a bad validation record fails now, not mid-training
        longest = max([longest, *(len(r["input_ids"]) for r in [*rows, *held_out])])
        tasks.append(TaskTarget(t.name or None, i, tokenizing, data.validation, t.metric or cfg.eval.metric,
                                t.max_new_tokens or cfg.eval.max_new_tokens, rows))
        train, chat = train + data.train, chat or data.chat
    return tasks, (data if not cfg.tasks else TaskData(train, [], chat)), longest


def _load_start_model(cfg: RunConfig):
    """The model training starts from: `model.name`, or an earlier run's tuned model (sequential training)."""
    if cfg.model.init_from:
        loaded, _ = load_tuned_model(cfg.model.init_from, read_run_info(cfg.model.init_from), cfg.model.dtype,
                                     cfg.model.trust_remote_code)
        loaded.source = f"{cfg.model.init_from}/{rundir.MODEL}"
        return loaded
    return load_model(cfg.model.name, cfg.model.dtype, cfg.model.trust_remote_code)


def _unsharded(cfg: RunConfig, gathered: dict):
    """Main process of an FSDP2 run: a plain model with the gathered selected weights of stage 2 (none gathered:
    only stage 1 ran, and the frozen model is the starting one)."""
    model = _load_start_model(cfg).model
    if gathered:
        model.load_state_dict(inner_state(gathered))
    return model


def dataset_names(cfg: RunConfig) -> set[str]:
    """Names of the datasets a run trains on: each training file's name before its first dot
    (`…/world/data/true_false.train.jsonl` → true_false), an `hf:` source's config (or dataset), multi-task names."""
    names = {t.name for t in cfg.tasks}
    for source in [t.data.train for t in cfg.tasks] or [cfg.data.train]:
        if source.startswith("hf:"):
            names.add(source[3:].split(":")[-1].split("/")[-1])
        else:
            names.add(Path(source).name.split(".")[0])
    return names


def start_run(p: Prepared) -> Path:
    """Claim the output directory and write what a resume needs first: the resolved config and the data's
    fingerprint (main process only; every process has checked the directory before)."""
    run_dir = claim_output_dir(p.cfg)
    atomic_write_text(run_dir / rundir.CONFIG, dump_config(p.cfg))
    atomic_write_text(run_dir / rundir.DATA_FINGERPRINT, data_fingerprint(p) + "\n")
    atomic_write_json(run_dir / rundir.CONFIG_FINGERPRINT, config_fingerprint(p.cfg))
    return run_dir


def data_fingerprint(p: Prepared) -> str:
    """sha256 of every tokenized training row and validation example, so a resume refuses changed data."""
    per_task = [t.rows for t in p.tasks] if p.cfg.tasks else []  # as hashed before a single task was a task too
    h = hashlib.sha256(json.dumps([p.rows, per_task]).encode())
    if p.stage2_rows is not p.rows:
        h.update(json.dumps(p.stage2_rows).encode())
    for ex in (ex for t in p.tasks for ex in t.validation):
        h.update(json.dumps([ex.input, ex.target]).encode())
    return h.hexdigest()


def _stage1(model, prompt: torch.Tensor, ctx: StageContext, name: str, resuming: bool,
            vocab_norm: float) -> tuple[torch.Tensor, dict]:
    """Stage 1, or its saved outcome when a resumed run already finished it: the selected prompt and run.json's
    record of the stage."""
    stage_dir = ctx.run_dir / name
    done = load_stage_result(stage_dir) if resuming else None
    if done is not None:
        log.info("%s: finished before the interruption; using its selected prompt", name)
        return done
    key = None if resuming else stage1_reuse.stage1_key(model, prompt, ctx, name)
    shared = stage1_reuse.reuse(key, ctx, name)
    if shared is not None:
        prompt, record = shared
    else:
        prompt, record = train_prompt(model, prompt, ctx, resume_point(ctx.run_dir, name) if resuming else None,
                                      name=name)
        scale = row_norm(prompt) / vocab_norm
        record["prompt_scale"] = scale  # run.json stages: a prompt far off the vocabulary's scale
        log.info("%s: the prompt's rows are %.1f× the vocabulary's mean embedding norm", name, scale)
        stage1_reuse.remember(key, prompt, record, ctx, name)
    if is_main_process():
        save_stage_result(stage_dir, prompt, record)
    return prompt, record


def run_prepared(p: Prepared, run_dir: Path, resuming: bool, callbacks: list | None) -> Path:
    guard, policy = leakage_guard(p)
    ctx = StageContext(p.cfg, p.tokenizer, p.tokenizing, p.rows, p.data.validation, run_dir,
                       callbacks=list(callbacks or []), monitors=monitors(p), targets=p.tasks, guard=guard,
                       guard_policy=policy)
    started = time.time()
    model, prompts, stages, gathered = p.model, None if p.prompts is None else list(p.prompts), {}, {}
    fsdp = sharding() == "fsdp"

    def fresh():  # FSDP2 shards a model in place: a later stage wraps a new copy of the (unchanged) frozen one
        return _load_start_model(p.cfg).model if fsdp else model

    if p.method.stage1:                                      # ③ stage 1: each task's prompt alone, the model frozen
        vocab = row_norm(model.get_input_embeddings().weight.detach())  # before FSDP2 shards it: prompt_scale's
        for i, t in enumerate(p.tasks):
            name = rundir.stage1_name(t.name)
            task_ctx = dataclasses.replace(ctx, train_rows=t.rows, targets=[t])
            prompts[i], stages[name] = _stage1(fresh() if i else model, prompts[i], task_ctx, name, resuming, vocab)
    prompt = p.stage2_prompt(prompts)
    if p.method.stage2:                                                             # ④ stage 2: model tuning
        if p.method.stage1:
            model = fresh()
        stage2_ctx = dataclasses.replace(ctx, train_rows=p.stage2_rows)
        tuned = train_model(model, prompt, p.method, stage2_ctx,
                            resume_point(run_dir, rundir.STAGE2) if resuming else None)
        lm, gathered = tuned.lm, tuned.gathered
        stages.update(tuned.stages)
        prompt = None if lm.prompt is None else full(lm.prompt.detach()).clone()
        model = p.method.stage2.finish(lm, run_dir, p.tokenizer, is_main_process())
    if fsdp and is_main_process():  # the run directory is written from full weights, as without sharding
        model = _unsharded(p.cfg, gathered)
    if is_main_process():
        try:
            write_run(run_dir, p, model, prompt, stages, started)                  # ⑤ run directory
        except Exception as e:
            if not is_disk_full(e):
                raise
            raise disk_full(getattr(e, "target", None) or getattr(e, "filename", None) or run_dir,
                            getattr(e, "needs", 0),
                            f"`promot train --resume {run_dir}` (its checkpoints are intact)") from None
    wait_for_everyone()
    return run_dir


def write_run(run_dir: Path, p: Prepared, model, prompt, stages: dict[str, dict], started: float) -> Path:
    """⑤ The run directory: model/, prompt/ (lora/ is already there), validation.jsonl, then run.json last
    ('complete')."""
    cfg, tok, source, base_fp = p.cfg, p.tokenizer, p.source, p.base_fingerprint
    model.requires_grad_(False)
    save_model(run_dir / rundir.MODEL, model, tok)
    model_fp = fingerprint(model, tok)
    fps = sorted({base_fp, model_fp})
    base = model_dir_for_peft(run_dir)  # what AutoPeftModelForCausalLM.from_pretrained(RUN/prompt) loads
    for i, t in enumerate(p.tasks if prompt is not None else ()):  # the bank's rows: prompt/, or with declared
        where = rundir.PROMPT if t.name is None else rundir.prompts_path(t.name)  # tasks prompts/<task>/ by name
        save_prompt(run_dir / where, prompt[i], model, base, fps)
    save_carried(run_dir, p.carried, model, model_fp)
    write_examples(run_dir / rundir.VALIDATION, [(t.name, t.validation) for t in p.tasks])
    record = rundir.RunRecord(
        method=cfg.method,
        base_model=rundir.BaseModelRef(source, base_fp),
        model=rundir.TunedModelRef(rundir.MODEL, model_fp),
        prompt=None if prompt is None or p.cfg.tasks else rundir.PromptRef(rundir.PROMPT, prompt.shape[1]),
        prompts={name: rundir.prompts_path(name)
                 for name in [*p.carried, *(t.name for t in p.cfg.tasks if prompt is not None)]},
        tasks=tuple(t.name for t in p.cfg.tasks),
        init_from=cfg.model.init_from,
        chat=p.data.chat,
        target_metric=cfg.eval.metric,
        stages=stages,
        answer_format=answer_format(p),
        inputs=rundir.InputsRef.of(cfg),
        guard=guard_outcome(stages),
        trained_data=tuple(sorted(dataset_names(cfg))),
        data_fingerprint=(run_dir / rundir.DATA_FINGERPRINT).read_text().strip(),
        seconds=round(time.time() - started, 1),
        promot_version=__version__,
    )
    write_model_card(run_dir, record)
    atomic_write_json(run_dir / rundir.RUN_INFO, record.to_json())
    log.debug("run written to %s", run_dir)  # callers print the returned path
    return run_dir
