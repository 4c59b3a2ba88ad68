"""The run directory — the contract every other command reads:

    run/config.yaml          resolved config
    run/metrics.jsonl        one line per Trainer log (stage, step, loss, lr, eval_target_score)
    run/model/               save_pretrained + tokenizer; loads with plain transformers; contains no prompt;
                             README.md: its model card (base model, method, data, selection; eval after `promot eval`)
    run/prompt/              PEFT prompt-tuning adapter (methods with a prompt)
    run/lora/                PEFT LoRA adapter (lora methods; model/ holds the merged weights)
    run/stage{1,2}/          Trainer checkpoints every save_every steps: checkpoint-N/{model,prompt}/ + optimizer,
                             scheduler, RNG and data position + promot_state.json (best-so-far, for --resume)
    run/stage1/selected.safetensors   stage 1's selected prompt + its history: a resumed run skips a finished stage 1
    run/data.sha256          the tokenized data's fingerprint: --resume refuses to continue on changed data
    run/run.json             method, base model + fingerprints, selection per stage; written last = run complete

Everything is written to a temporary name and renamed, so a crash never leaves a complete-looking half file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from promot.io import atomic_dir, atomic_write_text
from promot.prompt import PromptedLM, save_prompt
from promot.prompt.soft_prompt import inner_state, plain_model


def save_model(directory: Path, model: torch.nn.Module, tokenizer, state_dict: dict | None = None) -> None:
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)


def save_checkpoint(folder: Path, lm: PromptedLM, tokenizer, state_dict: dict | None = None) -> None:
    """A resumable checkpoint: model weights (or LoRA adapter) and the prompt, together. `state_dict` is the
    wrapper's gathered full state (FSDP/ZeRO-3 keep only shards in the module)."""
    save_model(folder / "model", lm.model, tokenizer, None if state_dict is None else inner_state(state_dict))
    if lm.prompt is not None:
        prompt = lm.prompt if state_dict is None else state_dict["prompt"]
        source = getattr(plain_model(lm.model).config, "_name_or_path", "") or ""
        save_prompt(folder / "prompt", prompt, plain_model(lm.model), source, [])


def model_dir_for_peft(run_dir: Path) -> str:
    """A prompt adapter's `base_model_name_or_path`: the run's own model/, as an absolute path, because PEFT's
    AutoPeftModel loads it relative to the working directory (an alias like `world-tiny` loads nowhere). The prompt
    belongs to these weights (ProMoT tunes the model around it); after moving a run, pass the model yourself."""
    return str((Path(run_dir) / "model").resolve())


def write_model_card(run_dir: Path, info: dict | None = None) -> None:
    """RUN/model/README.md, a Hugging Face model card: training facts from run.json and config.yaml, and the eval
    table once `promot eval` has written eval.json (it rewrites the card)."""
    from promot.models.loading import hub_id

    run_dir = Path(run_dir)
    info = info or json.loads((run_dir / "run.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
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
                     f", template `{d.get('template')}` → `{d.get('completion')}`")
    for stage, h in info.get("stages", {}).items():
        score = h.get("best_score")
        lines.append(f"- {stage}: selected step {h.get('best_step')} by validation {h.get('metric')} "
                     + ("–" if score is None else f"{score:.2f}"))
    if info.get("prompt"):
        lines.append(f"- soft prompt: `prompt/` ({info['prompt']['length']} virtual tokens, a PEFT prompt-tuning "
                     "adapter for this model: `AutoPeftModelForCausalLM.from_pretrained(\"RUN/prompt\")`)")
    if info.get("prompt"):
        lines += ["", "Use the model without the prompt for other tasks, and with it for the fine-tuned task."]
    lines += ["", *_eval_table(run_dir / "eval.json")]
    atomic_write_text(run_dir / "model" / "README.md", "\n".join(lines).rstrip() + "\n")


def _eval_table(eval_json: Path) -> list[str]:
    """Variant × shots: Norm. Avg. over the ICL tasks and the trained target's score (from `promot eval`)."""
    if not eval_json.is_file():
        return []
    data = json.loads(eval_json.read_text())
    rows = ["## Evaluation", "", "| variant | shots | ICL Norm. Avg. | target |", "|---|---|---|---|"]
    for name, per_k in data.get("variants", {}).items():
        for k, s in per_k.items():
            target = ", ".join(f"{t} {s['tasks'][t]['score']:.1f}" for t in s.get("target_tasks", [])) or "–"
            rows.append(f"| {name} | {k[2:]} | {s['norm_avg']:.1f} | {target} |")
    return [*rows, ""]
