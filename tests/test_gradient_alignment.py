"""Gradient alignment (paper §3.3): real vs shuffled labels, per module of the last block."""
from __future__ import annotations

import json

import torch

from conftest import make_model, make_tokenizer, run_config
from promot.cli import main
from promot.data import Example, Tokenizing
from promot.evaluate.gradient_alignment import alignment, module_groups, probe_batches, shuffled
from promot.prompt import PromptedLM


def _examples(targets: list[str]) -> list[Example]:
    return [Example(input=f"a b c question : it has {x} ? answer :", target=t, where=f"row {i}")
            for i, (x, t) in enumerate(zip("abcdefgh", targets))]


def _probe(targets, arch="llama"):
    tok = make_tokenizer()
    model = make_model(arch)
    lm = PromptedLM(model, None)
    real, fake = probe_batches(_examples(targets), Tokenizing(tok, arch == "t5", 64), tok.pad_token_id, 2, 4)
    return lm, real, fake, module_groups(model)


def test_identical_label_sets_align_perfectly():
    lm, real, fake, groups = _probe(["True"] * 8)  # shuffling changes nothing
    scores = alignment(lm, real, fake, groups)
    assert set(scores) == {"q", "k", "v", "mlp"}
    assert all(abs(v - 1.0) < 1e-5 for v in scores.values())


def test_shuffled_labels_differ_and_nothing_is_touched():
    lm, real, fake, groups = _probe(["True", "False"] * 4)
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    scores = alignment(lm, real, fake, groups)
    assert all(-1.0 <= v < 0.9999 for v in scores.values())
    assert all(p.grad is None and torch.equal(p, before[n]) for n, p in lm.named_parameters())


def test_module_groups_pick_the_last_block():
    model = make_model("llama")
    groups = module_groups(model)
    picked = [n for n, p in model.named_parameters() if any(p is q for ps in groups.values() for q in ps)]
    assert picked and all(".layers.1." in n for n in picked)  # 2-layer model: the last block only
    assert len(groups["mlp"]) == 3  # gate, up, down
    assert set(module_groups(make_model("gpt2"))) == {"qkv", "mlp"}
    t5 = make_model("t5")
    groups = module_groups(t5)
    assert {"q", "k", "v", "mlp"} <= set(groups)
    picked = [n for n, p in t5.named_parameters() if any(p is q for ps in groups.values() for q in ps)]
    assert picked and all(n.startswith("decoder.block.1.") for n in picked)


def test_shuffled_keeps_inputs_and_label_multiset():
    exs = _examples(["True", "False", "False", "True", "True", "False", "True", "True"])
    sh = shuffled(exs, seed=3)
    assert [e.input for e in sh] == [e.input for e in exs]
    assert sorted(e.target for e in sh) == sorted(e.target for e in exs)


def test_diagnose_cli_logs_alignment_over_steps(tmp_path, tiny_dirs, task_files, capsys):
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    assert main(["diagnose", "gradient-alignment", str(tmp_path / "c.yaml"), "--every", "2"]) == 0
    run = tmp_path / "run-gradient-alignment"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = sorted(m["step"] for m in metrics if "align_mlp" in m)
    assert steps == [0, 2, 4]
    assert json.loads((run / "run.json").read_text())["method"] == "finetune"
    assert "mlp" in capsys.readouterr().out
