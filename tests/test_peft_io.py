"""Prompts on disk are PEFT adapters both ways; mismatched prompts are refused."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import make_model
from peft import PromptTuningConfig, get_peft_model

from promot.errors import CheckpointError
from promot.models import fingerprint
from promot.prompt import PromptedLM, check_compatible, load_prompt, save_prompt


def test_round_trip_keeps_tensor_and_fingerprints(tmp_path):
    model = make_model("llama")
    prompt = torch.randn(6, 32)
    save_prompt(tmp_path / "p", prompt, model, "tiny-llama", ["abc", "def"])
    cfg = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["num_virtual_tokens"] == 6 and cfg["token_dim"] == 32
    saved = load_prompt(tmp_path / "p")
    assert torch.equal(saved.embeddings, prompt) and saved.fingerprints == ["abc", "def"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp leftovers


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_loads_an_adapter_made_by_peft(arch, tmp_path):
    model = make_model(arch).eval()
    task = "SEQ_2_SEQ_LM" if arch == "t5" else "CAUSAL_LM"
    peft_model = get_peft_model(model, PromptTuningConfig(task_type=task, num_virtual_tokens=7))
    peft_model.save_pretrained(tmp_path)
    saved = load_prompt(tmp_path)
    assert saved.embeddings.shape == (7, 32) and saved.fingerprints == []
    expected = peft_model.prompt_encoder["default"].embedding.weight[:7]
    assert torch.equal(saved.embeddings, expected.float())
    ids = torch.randint(4, 20, (2, 6))
    labels = torch.randint(4, 20, (2, 3))
    kw = {"labels": labels} if arch == "t5" else {}
    peft_model.eval()
    with torch.no_grad():
        ours = PromptedLM(model, saved.embeddings).eval()(ids, torch.ones_like(ids), **kw).logits
        theirs = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw).logits
    torch.testing.assert_close(ours, theirs if arch == "t5" else theirs[:, 7:])


def test_refuses_wrong_hidden_size_and_wrong_model(tmp_path):
    model = make_model("llama")
    save_prompt(tmp_path, torch.randn(4, 16), model, "x", [])
    with pytest.raises(CheckpointError, match="hidden size 16 does not match the model's 32"):
        check_compatible(load_prompt(tmp_path), model, None, "p")
    fp = fingerprint(model)
    save_prompt(tmp_path, torch.randn(4, 32), model, "x", [fp])
    check_compatible(load_prompt(tmp_path), model, fp, "p")  # right model: fine
    other = make_model("llama")
    with torch.no_grad():
        other.model.norm.weight.add_(1.0)
    with pytest.raises(CheckpointError, match="trained for another model"):
        check_compatible(load_prompt(tmp_path), other, fingerprint(other), "p")


def test_not_a_prompt_adapter(tmp_path):
    with pytest.raises(CheckpointError, match="not a PEFT adapter"):
        load_prompt(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a prompt-tuning adapter"):
        load_prompt(tmp_path)


def test_a_runs_prompt_loads_with_auto_peft_model_from_anywhere(tmp_path, tiny_dirs, task_files, monkeypatch):
    """base_model_name_or_path is the run's own model/ (absolute), so AutoPeftModelForCausalLM loads RUN/prompt
    from any working directory and gives PromptedLM's logits where their orders agree (no leading BOS; with one,
    PEFT puts the prompt before it and promot after); the run's model card names base, method and data."""
    import yaml
    from conftest import run_config
    from peft import AutoPeftModelForCausalLM

    import promot

    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    peft_model = AutoPeftModelForCausalLM.from_pretrained(run / "prompt").eval()
    loaded = promot.load_run(run)
    ids = torch.tensor([[4, 5, 6, 15, 14]])
    bos = torch.tensor([[1, 4, 5, 6, 15, 14]])
    with torch.no_grad():
        torch.testing.assert_close(peft_model(input_ids=ids).logits[:, -ids.shape[1]:], loaded.lm(ids).logits)
        assert not torch.allclose(peft_model(input_ids=bos).logits[:, -bos.shape[1]:], loaded.lm(bos).logits)
    card = (run / "model" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and "promot" in front["tags"] and "base_model" not in front
    assert "method `promot`" in card and str(task_files["train"]) in card and "stage2: selected step" in card


def test_model_card_base_model_is_a_hub_id_or_absent(tmp_path):
    from promot.models.loading import hub_id

    assert hub_id("gemma-3-270m") == "google/gemma-3-270m" and hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert hub_id("world-tiny") is None and hub_id(str(tmp_path)) is None and hub_id("./m") is None
