"""RUN/model/README.md, the run's Hugging Face model card: written with the run, rewritten by `promot eval` (which
adds its table): a function of run.json, config.yaml and eval.json."""
from __future__ import annotations

from pathlib import Path

import yaml

from promot import rundir
from promot.eval_record import EvalRecord, read_eval
from promot.io import atomic_write_text
from promot.rundir import RunRecord, read_run_info


def write_model_card(run_dir: Path, record: RunRecord | None = None) -> None:
    """RUN/model/README.md, a Hugging Face model card: training facts from run.json and config.yaml, and the eval
    table once `promot eval` has written eval.json (it rewrites the card)."""
    from promot.models.loading import hub_id

    run_dir = Path(run_dir)
    record = record or read_run_info(run_dir)
    cfg = yaml.safe_load((run_dir / rundir.CONFIG).read_text()) or {}
    source = record.base_model.source
    front = {"base_model": hub_id(source), "library_name": "transformers",
             "tags": list(dict.fromkeys(["promot", record.method,
                                         *(["prompt-tuning"] if record.prompt or record.prompts else [])]))}
    front = {k: v for k, v in front.items() if v}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {run_dir.name}", "",
             f"Fine-tuned with promot (ProMoT: prompt tuning, then model tuning with that prompt attached and "
             f"frozen), method `{record.method}`, from `{source}` (fingerprint "
             f"{record.base_model.fingerprint[:12]}).", "", "## Training", ""]
    data = cfg.get("data") or {}
    for t in cfg.get("tasks") or [{"name": None, "data": data}]:
        d = t.get("data") or {}
        name = f" ({t['name']})" if t.get("name") else ""
        chat = record.trained_in_chat(bool(d.get("chat_template")))
        lines.append(f"- data{name}: train `{d.get('train')}`, validation `{d.get('validation') or 'held out from train'}`"
                     + _data_shape(d, chat))
    for stage, h in record.stages.items():
        score = h.get("best_score")
        at = f"α = {h['best_alpha']:g} (θ = α·tuned + (1−α)·base)" if "best_alpha" in h else f"step {h.get('best_step')}"
        lines.append(f"- {stage}: selected {at} by validation {h.get('metric')} "
                     + ("–" if score is None else f"{score:.2f}"))
    if record.guard is not None:
        g = record.guard
        lines.append(f"- leakage guard: without the prompt, the model answers generic requests in the target's "
                     f"format {100 * g.leakage:.1f}% of the time (the starting model: {100 * g.base:.1f}%, ceiling "
                     f"+{g.ceiling:g} points); selection kept the least leaking checkpoint within "
                     f"{g.tolerance:.1f} points of the best target score")
        if not g.held:
            lines += ["", f"**Warning: the protection did not hold.** {g.describe()}"]
    if record.prompt:
        lines.append(f"- soft prompt: `prompt/` ({record.prompt.length} virtual tokens, a PEFT prompt-tuning "
                     "adapter for this model: `AutoPeftModelForCausalLM.from_pretrained(\"RUN/prompt\")`, which "
                     "puts it before any BOS; promot trained it after the BOS a tokenizer adds itself)")
        lines += ["", "Use the model without the prompt for other tasks, and with it for the fine-tuned task."]
    lines += ["", *_eval_table(read_eval(run_dir))]
    atomic_write_text(run_dir / rundir.MODEL / rundir.MODEL_CARD, "\n".join(lines).rstrip() + "\n")


def _data_shape(d: dict, chat: bool) -> str:
    """How the records were read: the template, and for chat runs the template's rendering and trained turns."""
    fmt = d.get("format") or "auto"
    out = f", format `{fmt}`" if fmt != "auto" else ""
    if d.get("template") or not chat:
        out += f", template `{d.get('template')}` → `{d.get('completion')}`"
    if chat:
        turns = "the last assistant turn" if d.get("train_on") == "last" else "every assistant turn"
        out += f", rendered in the tokenizer's chat template (loss on {turns}"
        out += f"; system prompt `{d['system']}`)" if d.get("system") else ")"
    return out


def _eval_table(data: EvalRecord | None) -> list[str]:
    """Variant × shots: Norm. Avg. over the ICL tasks and the trained target's score (from `promot eval`)."""
    if data is None:
        return []
    rows = ["## Evaluation", "", "| variant | shots | ICL Norm. Avg. | target |", "|---|---|---|---|"]
    for name, per_k in data.variants.items():
        for k, s in per_k.items():
            target = ", ".join(f"{t} {s.tasks[t].score:.1f}" for t in s.target_tasks) or "–"
            rows.append(f"| {name} | {k[2:]} | {s.norm_avg:.1f} | {target} |")
    return [*rows, ""]
