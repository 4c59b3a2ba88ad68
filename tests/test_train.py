"""Training stages and the run directory: what each stage may change, what the run saves, and selection."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import TEMPLATE, run_config
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, TrainerCallback

import promot
from promot.api import load_run, prepare
from promot.prompt import load_prompt
from promot.training import METHODS
from promot.training.methods import LORA
from promot.training.methods.wise_ft import WISE_FT
from promot.training.loop import StageContext
from promot.training.stage1_prompt_tuning import train_prompt
from promot.training.stage2_model_tuning import train_model


def _context(p, tmp_path) -> StageContext:
    return StageContext(p.cfg, p.tokenizer, p.tokenizing, p.rows, p.data.validation, tmp_path)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_stage1_changes_only_the_prompt_and_stage2_only_the_model(arch, tiny_dirs, task_files, tmp_path):
    over = {"stage1": {"steps": 3, "lr": 0.3, "eval_every": 0, "eval_on_start": False},
            "stage2": {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False}}
    p = prepare(run_config(tiny_dirs[arch], task_files, tmp_path / "run", **over))
    ctx = _context(p, tmp_path)
    before = _state(p.model)
    prompt, record = train_prompt(p.model, p.prompts[0], ctx)
    assert not torch.equal(prompt, p.prompts[0]), "stage 1 must train the prompt"
    assert record["best_step"] == 3 and record["lr"] == 0.3  # the stage's record comes back with it
    after1 = _state(p.model)
    assert all(torch.equal(before[k], after1[k]) for k in before), "stage 1 must not touch the model"

    lm = train_model(p.model, prompt, METHODS["promot"], ctx).lm
    assert torch.equal(lm.prompt.detach(), prompt), "stage 2 must leave the prompt bit-identical"
    assert not lm.prompt.requires_grad
    after2 = _state(p.model)
    assert any(not torch.equal(after1[k], after2[k]) for k in after1), "stage 2 must train the model"


def test_promot_run_directory_contract(tiny_dirs, task_files, tmp_path):
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run"))
    info = json.loads((run / "run.json").read_text())
    assert info["method"] == "promot" and set(info["stages"]) == {"stage1", "stage2"}
    assert info["stages"]["stage2"]["scores"][0]["step"] == 0  # the stage-1 point competes in stage 2
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    stages = {json.loads(line)["stage"] for line in (run / "metrics.jsonl").read_text().splitlines()}
    assert stages == {"stage1", "stage2"}

    # model/ holds exactly the base architecture's tensors, no prompt, and loads with plain transformers
    with safe_open(run / "model" / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    assert not any("prompt" in k for k in keys)
    assert keys <= set(base.state_dict()) and len(keys) >= len(base.state_dict()) - 1  # tied lm_head may be dropped
    plain = AutoModelForCausalLM.from_pretrained(run / "model").eval()
    loaded = load_run(run, with_prompt=False)
    ids = torch.tensor([[1, 4, 5, 6, 14]])
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, loaded.lm(ids).logits)

    # prompt/ is the prompt the run used, and it attaches to the tuned model
    prompt = load_prompt(run / "prompt")
    assert prompt.embeddings.shape == (4, 32)
    assert info["model"]["fingerprint"] in prompt.fingerprints
    assert info["base_model"]["fingerprint"] in prompt.fingerprints
    with_prompt = load_run(run)
    assert torch.equal(with_prompt.lm.prompt.detach(), prompt.embeddings)
    assert not any(p.name.startswith(".") for p in run.iterdir()), "temporary files left behind"
    # run.json records the prompt's scale against the vocabulary's embeddings (stage 2 keeps the prompt as is)
    rows = base.get_input_embeddings().weight.detach()
    want = float(prompt.embeddings.norm(dim=-1).mean() / rows.norm(dim=-1).mean())
    assert info["stages"]["stage1"]["prompt_scale"] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_end_to_end(method, tiny_dirs, task_files, tmp_path):
    # Only the final checkpoint is scored, so selection cannot fall back to the untouched step 0.
    stage = {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False}
    over = {"method": method, "stage1": {**stage, "lr": 0.3}, "stage2": stage,
            "replay": {"train": str(task_files["validation"]), "template": TEMPLATE, "completion": "{label}"},
            "wise_ft": {"alphas": [0.5, 1.0]}}
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    info = json.loads((run / "run.json").read_text())
    m = METHODS[method]
    assert (run / "prompt").is_dir() == (m.prompt is not None)
    assert (run / "lora").is_dir() == (m.stage2 is LORA)
    assert ("wise-ft" in info["stages"]) == (WISE_FT in m.addons)
    assert ("stage1" in info["stages"]) == m.stage1 and ("stage2" in info["stages"]) == (m.stage2 is not None)
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    tuned = AutoModelForCausalLM.from_pretrained(run / "model")
    changed = any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), tuned.state_dict().values()))
    assert changed == (m.stage2 is not None)
    out = promot.generate(run, ["a b c question : it has a ? answer :"], with_prompt=True if m.prompt else None,
                          max_new_tokens=2)
    assert len(out) == 1 and isinstance(out[0], str)
    if m.stage2 is LORA:  # the saved adapter on the base model reproduces the merged model
        from peft import PeftModel

        ids = torch.tensor([[1, 4, 5, 6, 14]])
        adapted = PeftModel.from_pretrained(base, run / "lora").eval()
        with torch.no_grad():
            torch.testing.assert_close(adapted(input_ids=ids).logits, tuned.eval()(ids).logits)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_promot_on_other_architectures(arch, tiny_dirs, task_files, tmp_path):
    run = promot.train(run_config(tiny_dirs[arch], task_files, tmp_path / "run"))
    cls = AutoModelForSeq2SeqLM if arch == "t5" else AutoModelForCausalLM
    cls.from_pretrained(run / "model")
    assert load_prompt(run / "prompt").embeddings.shape == (4, 32)
    assert len(promot.generate(run, ["a b c question : it has a ? answer :"], max_new_tokens=2)) == 1


class _Snapshots(TrainerCallback):
    """The model's weights after every optimizer step."""

    def __init__(self, model) -> None:
        self.model, self.seen = model, {}

    def on_step_end(self, args, state, control, **kw):
        self.seen[state.global_step] = _state(self.model)


def test_selection_keeps_the_best_checkpoint_and_earlier_on_ties(tiny_dirs, task_files, tmp_path, monkeypatch):
    """Scripted scores: step 0 → 10, 1 → 50, 2 → 50 (tie), 3 → 20, 4 → 5. Best = step 1's weights."""
    scores = iter([10.0, 50.0, 50.0, 20.0, 5.0])
    monkeypatch.setattr("promot.training.multitask.target_score", lambda *a, **k: next(scores))
    over = {"method": "finetune", "stage2": {"steps": 4, "lr": 1e-2, "eval_every": 1}}
    p = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    snaps = _Snapshots(p.model)
    ctx = dataclasses.replace(_context(p, tmp_path), callbacks=[snaps])
    stages = train_model(p.model, None, METHODS["finetune"], ctx).stages
    assert stages["stage2"]["best_step"] == 1 and stages["stage2"]["best_score"] == 50.0
    final = _state(p.model)
    assert all(torch.equal(final[k], snaps.seen[1][k]) for k in final)
    assert any(not torch.equal(final[k], snaps.seen[4][k]) for k in final)


def test_flat_scores_keep_stage_1s_latest_prompt_but_stage_2s_starting_model(tiny_dirs, task_files, tmp_path,
                                                                              monkeypatch):
    """Every checkpoint scores 0: stage 1 (only the prompt trains) hands over its trained prompt, not its start;
    stage 2 (the model trains) keeps the model it started from, as ties to the earlier step always did."""
    monkeypatch.setattr("promot.training.multitask.target_score", lambda *a, **k: 0.0)
    over = {"stage1": {"steps": 4, "lr": 0.3, "eval_every": 2}, "stage2": {"steps": 4, "lr": 1e-2, "eval_every": 2}}
    p = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    ctx = _context(p, tmp_path)
    prompt, record = train_prompt(p.model, p.prompts[0], ctx)
    assert record["best_step"] == 4 and not torch.equal(prompt, p.prompts[0])
    before = _state(p.model)
    stages = train_model(p.model, prompt, METHODS["promot"], ctx).stages
    assert stages["stage2"]["best_step"] == 0
    after = _state(p.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("method", ["random-prompt", "lora"])
def test_trainer_checkpoints_hold_model_and_prompt_and_resume_exactly(method, tiny_dirs, task_files, tmp_path):
    """Checkpoint at step 2 of 4, resume from it in a fresh process state: same final weights as straight through."""
    stage = {"steps": 4, "lr": 1e-2, "eval_every": 0, "eval_on_start": False, "save_every": 2}
    over = {"method": method, "stage2": stage}

    def run(out, resume=None):
        p = prepare(run_config(tiny_dirs["llama"], task_files, out, **over))
        return train_model(p.model, p.prompt, METHODS[method], _context(p, out), resume=resume).lm

    straight = run(tmp_path / "a")
    ckpt = tmp_path / "a" / "stage2" / "checkpoint-2"
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    assert (ckpt / "model" / weights).is_file()
    assert (ckpt / "prompt" / "adapter_config.json").is_file() == (method == "random-prompt")
    resumed = run(tmp_path / "b", resume=str(ckpt))
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_trains_the_same_prompt(tiny_dirs, task_files, tmp_path):
    stage = {"steps": 3, "lr": 0.3, "eval_every": 0, "eval_on_start": False}
    prompts = []
    for gc in (False, True):
        over = {"method": "prompt-tuning", "stage1": {**stage, "gradient_checkpointing": gc}}
        p = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / f"r{gc}", **over))
        prompts.append(train_prompt(p.model, p.prompts[0], _context(p, tmp_path / f"r{gc}"))[0])
        assert not p.model.is_gradient_checkpointing  # switched off again after the stage
    torch.testing.assert_close(prompts[0], prompts[1])


def test_stage2_warns_when_the_target_is_already_solved(tiny_dirs, task_files, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("promot.training.multitask.target_score", lambda *a, **k: 100.0)
    over = {"method": "random-prompt", "stage2": {"steps": 2, "lr": 1e-2, "eval_every": 1}}
    p = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    ctx = _context(p, tmp_path)
    before = _state(p.model)
    with caplog.at_level("WARNING", logger="promot.training.selection"):
        stages = train_model(p.model, p.prompt, METHODS["random-prompt"], ctx).stages
    assert "already solved at step 0" in caplog.text
    assert stages["stage2"]["best_step"] == 0  # ties keep the untouched model
    assert all(torch.equal(before[k], v) for k, v in _state(p.model).items())


def test_training_can_start_from_a_peft_adapter_made_elsewhere(tiny_dirs, task_files, tmp_path):
    from peft import PromptTuningConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6)).save_pretrained(tmp_path / "a")
    stage = {"steps": 2, "lr": 0.3, "eval_every": 0, "eval_on_start": False}
    over = {"method": "prompt-tuning", "stage1": stage, "prompt": {"from_adapter": str(tmp_path / "a")}}
    p = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    assert torch.equal(p.prompts[0], load_prompt(tmp_path / "a").embeddings)
    run = promot.train(p.cfg)
    assert load_prompt(run / "prompt").embeddings.shape == (6, 32)


def test_nan_loss_stops_with_one_clear_line(tiny_dirs, task_files, tmp_path, monkeypatch, capsys):
    from promot.cli import main
    from promot.prompt import PromptedLM

    real_loss = PromptedLM._loss

    def poisoned(self, logits, targets, num_items):
        loss = real_loss(self, logits, targets, num_items)
        return loss * float("nan") if self.prompt is None else loss  # stage 2 of finetune diverges

    monkeypatch.setattr(PromptedLM, "_loss", poisoned)
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage2 step 1: loss is nan" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run" / "run.json").exists()  # never looks complete
