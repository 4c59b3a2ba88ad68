"""Sequential ProMoT (`model.init_from`): the earlier run's prompt stays usable, and fingerprint-checked."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import run_config

import promot
from promot.api import load_run
from promot.cli import main
from promot.errors import CheckpointError
from promot.models import fingerprint, load_model
from promot.prompt import check_compatible, load_prompt


@pytest.fixture(scope="module")
def chain(tiny_dirs, task_files, tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    a = promot.train(run_config(tiny_dirs["llama"], task_files, root / "task_a"))
    b_cfg = run_config(tiny_dirs["llama"], task_files, root / "task_b", seed=1)  # another prompt init
    b_cfg["model"] = {"init_from": str(a)}
    b = promot.train(b_cfg)
    c_cfg = run_config(tiny_dirs["llama"], task_files, root / "task_c", method="finetune")
    c_cfg["model"] = {"init_from": str(b)}
    c = promot.train(c_cfg)
    return a, b, c


def test_sequential_run_starts_from_the_earlier_model_and_carries_its_prompt(chain):
    a, b, _ = chain
    info_a, info_b = (json.loads((r / "run.json").read_text()) for r in (a, b))
    assert info_b["base_model"]["fingerprint"] == info_a["model"]["fingerprint"]
    assert info_b["init_from"] == str(a) and info_b["prompts"] == {"task_a": "prompts/task_a"}
    carried, own = load_prompt(b / "prompts" / "task_a"), load_prompt(a / "prompt")
    assert torch.equal(carried.embeddings, own.embeddings)  # bit-identical: stage 2 of B never touched it
    assert info_b["model"]["fingerprint"] in carried.fingerprints


def test_carried_prompt_attaches_to_the_final_model_only_by_name(chain):
    a, b, _ = chain
    run = load_run(b, prompt_name="task_a")
    assert torch.equal(run.lm.prompt.detach(), load_prompt(a / "prompt").embeddings)
    assert not torch.equal(load_run(b).lm.prompt.detach(), run.lm.prompt.detach())  # B's own prompt differs
    with pytest.raises(CheckpointError, match="no prompt named 'nope'.*task_a"):
        load_run(b, prompt_name="nope")


def test_carried_prompt_refuses_an_unrelated_model(chain, tiny_dirs):
    _, b, _ = chain
    other = load_model(str(tiny_dirs["llama"]))
    with torch.no_grad():
        other.model.get_input_embeddings().weight.add_(0.01)  # same architecture, other weights
    with pytest.raises(CheckpointError, match="another model"):
        check_compatible(load_prompt(b / "prompts" / "task_a"), other.model,
                         fingerprint(other.model, other.tokenizer), "prompts/task_a")


def test_prompts_carry_down_a_chain_and_generate_uses_them(chain, capsys):
    _, _, c = chain
    assert sorted(p.name for p in (c / "prompts").iterdir()) == ["task_a", "task_b"]
    assert main(["generate", str(c), "a b c question : it has a ? answer :", "--prompt-name", "task_a",
                 "--max-new-tokens", "2"]) == 0
    assert main(["generate", str(c), "x", "--prompt-name", "task_z"]) == 2
    assert "no prompt named 'task_z'" in capsys.readouterr().err


def test_loaded_run_generates_what_api_generate_does(chain):
    """Inference lives on the loaded run: `load_run(run).generate` is `api.generate`, with the prompt, without it
    and with a carried one."""
    from promot import api

    a, b, _ = chain
    texts = ["a b c question : it has a ? answer :", "d e f question : it has b ? answer :"]
    run = load_run(a)
    assert run.generate(texts, max_new_tokens=2) == api.generate(a, texts, max_new_tokens=2)
    assert run.generate(texts, prompt=False, max_new_tokens=2) == api.generate(a, texts, False, max_new_tokens=2)
    assert run.generate(texts[0], max_new_tokens=2) == api.generate(a, texts[0], max_new_tokens=2)
    assert (load_run(b, prompt_name="task_a").generate(texts, max_new_tokens=2)
            == api.generate(b, texts, prompt_name="task_a", max_new_tokens=2))


def test_run_record_carries_what_evaluation_needs(chain, tmp_path):
    """run.json is one typed record, round-tripping exactly; it holds the answer format and the trained data's
    identity, so `promot eval` reads them instead of re-reading the training data (which may be gone)."""
    import shutil

    from promot.evaluate.runner import run_format
    from promot.rundir import RunRecord, read_run_info

    a, _, _ = chain
    raw = json.loads((a / "run.json").read_text())
    record = read_run_info(a)
    assert RunRecord.from_json(record.to_json()) == record and record.to_json() == raw
    assert record.answer_format.labels == ("False", "True") and record.trained_data == ("train",)
    assert record.data_fingerprint == (a / "data.sha256").read_text().strip()
    moved = shutil.copytree(a, tmp_path / "moved")  # its config.yaml still names the data; the record suffices
    cfg = (moved / "config.yaml").read_text().replace(raw["trained_data"][0], "gone")
    (moved / "config.yaml").write_text(cfg)
    assert run_format(read_run_info(moved)).labels == ("False", "True")
    (moved / "run.json").write_text(json.dumps({"stages": {}}))  # no method: not a record
    with pytest.raises(CheckpointError, match="not a promot run record"):
        read_run_info(moved)
