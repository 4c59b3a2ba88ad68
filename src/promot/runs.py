"""Reading finished run directories: run.json, the fingerprint-checked tuned model (`load_run`), the prompts a run
carries, and the model card (model/README.md). File names: `promot.rundir`.

A run carries its own prompt (`prompt/`) and, when it continued an earlier run (`model.init_from`, sequential
ProMoT), the earlier runs' prompts under `prompts/<name>/`, re-saved with the new model's fingerprint added: the
earlier task keeps its own prompt on the final model, and the prompt still refuses any unrelated model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from promot import rundir
from promot.config import RunConfig, load_config
from promot.data import Example, Tokenizing, with_chat_template
from promot.errors import CheckpointError
from promot.evaluate.target import generate_texts
from promot.io import atomic_write_text
from promot.models import LoadedModel, fingerprint, load_model
from promot.precision import resolve_bf16
from promot.prompt import PromptedLM, SavedPrompt, check_compatible, load_prompt, save_prompt
from promot.rundir import read_run_info

read_info = read_run_info  # the name the pipeline has used


def load_tuned_model(run_dir: str | Path, info: dict, dtype: str, trust_remote_code: bool) -> tuple[LoadedModel, str]:
    """The run's model/, refused if its weights no longer match the fingerprint in run.json."""
    loaded = load_model(str(Path(run_dir) / rundir.MODEL), dtype, trust_remote_code)
    model_fp = fingerprint(loaded.model, loaded.tokenizer)
    if model_fp != info["model"]["fingerprint"]:
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


def carried_prompts(run_dir: str | Path, info: dict) -> dict[str, SavedPrompt]:
    """Every prompt a run hands on to a run that continues it: its own (named after the run) and those it carries."""
    run_dir = Path(run_dir)
    out = {name: load_prompt(prompt_dir(run_dir, name)) for name in prompt_names(run_dir)}
    if info.get("prompt"):
        out[run_dir.name] = load_prompt(run_dir / rundir.PROMPT)
    return out


def save_carried(run_dir: Path, prompts: dict[str, SavedPrompt], model, model_fp: str) -> None:
    for name, saved in prompts.items():
        save_prompt(run_dir / rundir.PROMPTS / name, saved.embeddings, model, str((run_dir / rundir.MODEL).resolve()),
                    sorted({*saved.fingerprints, model_fp}))


def tokenizing(cfg: RunConfig, tokenizer, seq2seq: bool) -> Tokenizing:
    """How the run's config turns examples into tokens (training, selection and `load_run` alike)."""
    return Tokenizing(
        tokenizer, seq2seq, cfg.data.max_length, cfg.data.truncation,
        delimiter="" if cfg.data.chat_template else cfg.data.target_delimiter,
        special_in_text=cfg.data.chat_template, train_on=cfg.data.train_on,
    )


@dataclass
class LoadedRun:
    lm: PromptedLM
    """The tuned model with the run's prompt attached (prompt=None for methods without one)."""
    tokenizer: object
    info: dict
    config: RunConfig
    tokenizing: Tokenizing

    def generate(self, texts: list[str] | str, prompt: bool = True, max_new_tokens: int = 32) -> list[str]:
        """Greedy continuation of each text by the tuned model, in the run's chat template when it trained in one,
        at the run's precision. `prompt`: attach the loaded prompt (when the run was loaded with one); False: the
        bare tuned model (the ProMoT way for every other task)."""
        texts = [texts] if isinstance(texts, str) else texts
        examples = [Example(t, "", "<cli>") for t in texts]
        if self.config.data.chat_template:
            examples = with_chat_template(examples, self.tokenizer, self.config.data.system)
        lm = self.lm if prompt or self.lm.prompt is None else PromptedLM(self.lm.model, None).eval()
        return generate_texts(lm, self.tokenizing, examples, max_new_tokens,
                              bf16=resolve_bf16(self.config.bf16, self.config.fp16))


def load_run(run_dir: str | Path, with_prompt: bool = True, prompt_name: str | None = None) -> LoadedRun:
    """Load a finished run; the prompt - its own, or an earlier run's it carries (`prompt_name`) - is
    fingerprint-checked against the tuned model before it attaches."""
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    cfg = load_config(run_dir / rundir.CONFIG)
    loaded, model_fp = load_tuned_model(run_dir, info, cfg.model.dtype, cfg.model.trust_remote_code)
    prompt = None
    if with_prompt and (info.get("prompt") or prompt_name):
        prompt = checked_prompt(run_dir, prompt_name, loaded.model, model_fp)
    loaded.model.eval()
    seq2seq = bool(loaded.model.config.is_encoder_decoder)
    return LoadedRun(PromptedLM(loaded.model, prompt).eval(), loaded.tokenizer, info, cfg,
                     tokenizing(cfg, loaded.tokenizer, seq2seq))


def write_model_card(run_dir: Path, info: dict | None = None) -> None:
    """RUN/model/README.md, a Hugging Face model card: training facts from run.json and config.yaml, and the eval
    table once `promot eval` has written eval.json (it rewrites the card)."""
    from promot.models.loading import hub_id

    run_dir = Path(run_dir)
    info = info or read_info(run_dir)
    cfg = yaml.safe_load((run_dir / rundir.CONFIG).read_text()) or {}
    source = info["base_model"]["source"]
    front = {"base_model": hub_id(source), "library_name": "transformers",
             "tags": list(dict.fromkeys(["promot", info["method"],
                                         *(["prompt-tuning"] if info.get("prompt") or info.get("prompts") else [])]))}
    front = {k: v for k, v in front.items() if v}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {run_dir.name}", "",
             f"Fine-tuned with promot (ProMoT: prompt tuning, then model tuning with that prompt attached and "
             f"frozen), method `{info['method']}`, from `{source}` (fingerprint "
             f"{info['base_model']['fingerprint'][:12]}).", "", "## Training", ""]
    data = cfg.get("data") or {}
    for t in cfg.get("tasks") or [{"name": None, "data": data}]:
        d = t.get("data") or {}
        name = f" ({t['name']})" if t.get("name") else ""
        lines.append(f"- data{name}: train `{d.get('train')}`, validation `{d.get('validation') or 'held out from train'}`"
                     + _data_shape(d))
    for stage, h in info.get("stages", {}).items():
        score = h.get("best_score")
        at = f"α = {h['best_alpha']:g} (θ = α·tuned + (1−α)·base)" if "best_alpha" in h else f"step {h.get('best_step')}"
        lines.append(f"- {stage}: selected {at} by validation {h.get('metric')} "
                     + ("–" if score is None else f"{score:.2f}"))
    if info.get("prompt"):
        lines.append(f"- soft prompt: `prompt/` ({info['prompt']['length']} virtual tokens, a PEFT prompt-tuning "
                     "adapter for this model: `AutoPeftModelForCausalLM.from_pretrained(\"RUN/prompt\")`)")
    if info.get("prompt"):
        lines += ["", "Use the model without the prompt for other tasks, and with it for the fine-tuned task."]
    lines += ["", *_eval_table(rundir.read_eval(run_dir))]
    atomic_write_text(run_dir / rundir.MODEL / rundir.MODEL_CARD, "\n".join(lines).rstrip() + "\n")


def _data_shape(d: dict) -> str:
    """How the records were read: the template, and for chat runs the template's rendering and trained turns."""
    fmt = d.get("format") or "auto"
    out = f", format `{fmt}`" if fmt != "auto" else ""
    if d.get("template") or not d.get("chat_template"):
        out += f", template `{d.get('template')}` → `{d.get('completion')}`"
    if d.get("chat_template"):
        turns = "the last assistant turn" if d.get("train_on") == "last" else "every assistant turn"
        out += f", rendered in the tokenizer's chat template (loss on {turns}"
        out += f"; system prompt `{d['system']}`)" if d.get("system") else ")"
    return out


def _eval_table(data: dict | None) -> list[str]:
    """Variant × shots: Norm. Avg. over the ICL tasks and the trained target's score (from `promot eval`)."""
    if data is None:
        return []
    rows = ["## Evaluation", "", "| variant | shots | ICL Norm. Avg. | target |", "|---|---|---|---|"]
    for name, per_k in data.get("variants", {}).items():
        for k, s in per_k.items():
            target = ", ".join(f"{t} {s['tasks'][t]['score']:.1f}" for t in s.get("target_tasks", [])) or "–"
            rows.append(f"| {name} | {k[2:]} | {s['norm_avg']:.1f} | {target} |")
    return [*rows, ""]
