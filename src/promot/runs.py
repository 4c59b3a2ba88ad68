"""Reading finished run directories: the fingerprint-checked tuned model (`load_run`) and the prompts a run carries.
File names and the run record: `promot.rundir`; writing: `training/artifacts.py`, `model_card.py`.

A run carries its own prompt (`prompt/`) and, when it continued an earlier run (`model.init_from`, sequential
ProMoT), the earlier runs' prompts under `prompts/<name>/`, re-saved with the new model's fingerprint added: the
earlier task keeps its own prompt on the final model, and the prompt still refuses any unrelated model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from promot import rundir
from promot.config import load_config
from promot.data import Example, Tokenizing, load_task_data, with_chat_template
from promot.data.saved import read_examples_file
from promot.errors import CheckpointError, PromotError
from promot.models import LoadedModel, fingerprint, load_model
from promot.precision import resolve_bf16
from promot.prompt import PromptedLM, SavedPrompt, check_compatible, load_prompt, prompt_bos_id
from promot.prompt.generate import generate_texts
from promot.rundir import InputsRef, RunRecord, read_run_info


def run_inputs(run_dir: str | Path, record: RunRecord) -> InputsRef:
    """How the run shaped its inputs: the record's word, else (records written before it) its config.yaml's."""
    return record.inputs or InputsRef.of(load_config(Path(run_dir) / rundir.CONFIG))


def run_validation(run_dir: str | Path, record: RunRecord, tokenizer) -> dict[str | None, list[Example]]:
    """The validation examples selection scored, by task (None: a single-task run): validation.jsonl, else (runs
    written before it) the data read again through config.yaml - {} when that data is gone or unreadable from here."""
    saved = Path(run_dir) / rundir.VALIDATION
    if saved.is_file():
        return read_examples_file(saved)
    cfg = load_config(Path(run_dir) / rundir.CONFIG)
    out = {}
    for name, data in [(t.name, t.data) for t in cfg.tasks] or [(None, cfg.data)]:
        try:
            out[name] = load_task_data(data, tokenizer, cfg.seed).validation
        except (PromotError, OSError, ValueError):  # e.g. a relative data path from another working directory
            continue
    return out


def load_tuned_model(run_dir: str | Path, record: RunRecord, dtype: str,
                     trust_remote_code: bool) -> tuple[LoadedModel, str]:
    """The run's model/, refused if its weights no longer match the fingerprint in run.json."""
    loaded = load_model(str(Path(run_dir) / rundir.MODEL), dtype, trust_remote_code)
    model_fp = fingerprint(loaded.model, loaded.tokenizer)
    if model_fp != record.model.fingerprint:
        raise CheckpointError(f"{Path(run_dir) / rundir.MODEL}: weights changed since the run was written (fingerprint)")
    return loaded, model_fp


def prompt_names(run_dir: str | Path) -> list[str]:
    """Names of the earlier runs' prompts this run carries (prompts/<name>/)."""
    folder = Path(run_dir) / rundir.PROMPTS
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def prompt_dir(run_dir: str | Path, name: str | None) -> Path:
    """prompt/ (name None) or prompts/<name>/; an unknown name is an error listing the known ones."""
    run_dir = Path(run_dir)
    if name is None:
        return run_dir / rundir.PROMPT
    if name not in prompt_names(run_dir):
        raise CheckpointError(f"{run_dir}: no prompt named {name!r} (known: {', '.join(prompt_names(run_dir)) or 'none'})")
    return run_dir / rundir.PROMPTS / name


def checked_prompt(run_dir: str | Path, name: str | None, model, model_fp: str):
    """prompt/ or prompts/<name>/ as a [P, H] tensor, refused unless made for `model` (width and fingerprint)."""
    where = prompt_dir(run_dir, name)
    saved = load_prompt(where)
    check_compatible(saved, model, model_fp, str(where))
    return saved.embeddings


def carried_prompts(run_dir: str | Path, record: RunRecord) -> dict[str, SavedPrompt]:
    """Every prompt a run hands on to a run that continues it: its own (named after the run) and those it carries."""
    run_dir = Path(run_dir)
    out = {name: load_prompt(prompt_dir(run_dir, name)) for name in prompt_names(run_dir)}
    if record.prompt:
        out[run_dir.name] = load_prompt(run_dir / rundir.PROMPT)
    return out


@dataclass
class LoadedRun:
    lm: PromptedLM
    """The tuned model with the run's prompt attached (prompt=None for methods without one)."""
    tokenizer: object
    record: RunRecord
    inputs: InputsRef
    """How the run shaped its inputs (tokenizing, system prompt, precision): what `generate` repeats."""
    tokenizing: Tokenizing

    def generate(self, texts: list[str] | str, prompt: bool = True, max_new_tokens: int = 32) -> list[str]:
        """Greedy continuation of each text by the tuned model, in the run's chat template when it trained in one,
        at the run's precision. `prompt`: attach the loaded prompt (when the run was loaded with one); False: the
        bare tuned model (the ProMoT way for every other task)."""
        texts = [texts] if isinstance(texts, str) else texts
        examples = [Example(t, "", "<cli>") for t in texts]
        if self.record.trained_in_chat(self.inputs.chat_template):
            examples = with_chat_template(examples, self.tokenizer, self.inputs.system)
        lm = self.lm if prompt or self.lm.prompt is None else PromptedLM(self.lm.model, None).eval()
        return generate_texts(lm, self.tokenizing, examples, max_new_tokens,
                              bf16=resolve_bf16(self.inputs.bf16, self.inputs.fp16))


def load_run(run_dir: str | Path, with_prompt: bool = True, prompt_name: str | None = None) -> LoadedRun:
    """Load a finished run; the prompt - its own, or an earlier run's it carries (`prompt_name`) - is
    fingerprint-checked against the tuned model before it attaches."""
    run_dir = Path(run_dir)
    record = read_run_info(run_dir)
    inputs = run_inputs(run_dir, record)
    loaded, model_fp = load_tuned_model(run_dir, record, inputs.dtype, inputs.trust_remote_code)
    prompt = None
    if with_prompt and (record.prompt or prompt_name):
        prompt = checked_prompt(run_dir, prompt_name, loaded.model, model_fp)
    loaded.model.eval()
    seq2seq = bool(loaded.model.config.is_encoder_decoder)
    bos = prompt_bos_id(loaded.tokenizer) if record.prompt_after_bos else None
    lm = PromptedLM(loaded.model, prompt, bos_id=bos).eval()
    chat = record.trained_in_chat(inputs.chat_template)
    return LoadedRun(lm, loaded.tokenizer, record, inputs, Tokenizing.for_data(inputs, loaded.tokenizer, seq2seq, chat))
