"""Method sdft: on-policy self-distillation (Shenfeld et al., 2026) inside promot's loop, on TRL's loss. The
student answers from the bare input; the teacher is the model with the example's own demonstration in context."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import make_tokenizer, run_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import promot
from promot.errors import ConfigError
from promot.training.methods import sdft

STAGE = {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False}


def test_the_teacher_sees_the_demonstration_and_the_student_does_not(tiny_dirs, task_files, tmp_path, monkeypatch):
    seen = []
    real = sdft._completion_logits

    def spy(model, context, completion, done, pad_id, temperature):
        seen.append((model, [c.tolist() for c in context], completion.clone(), done.clone()))
        return real(model, context, completion, done, pad_id, temperature)

    monkeypatch.setattr(sdft, "_completion_logits", spy)
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="sdft", stage2=STAGE))
    assert len(seen) == 2 * 3  # the student and the teacher at each of the 3 steps
    tok = make_tokenizer()
    labels = {tok.convert_tokens_to_ids("True"), tok.convert_tokens_to_ids("False")}
    for (student, s_ctx, s_comp, _), (teacher, t_ctx, t_comp, _) in zip(seen[0::2], seen[1::2]):
        assert student is not teacher and torch.equal(s_comp, t_comp)  # one on-policy answer, scored by both
        for prompt, context in zip(s_ctx, t_ctx):
            assert tok.decode(prompt).endswith("answer :") and not labels & set(prompt)  # the input alone
            # the example, its reference answer (no end-of-sequence: "\n\n" is no token here), the example again
            assert context[: len(prompt)] == prompt and context[len(prompt)] in labels
            assert context[len(prompt) + 1:] == prompt[1:]  # no second BOS
    info = json.loads((run / "run.json").read_text())
    assert info["method"] == "sdft"


def test_sdft_moves_the_weights_and_leaves_its_base_teacher_as_it_was(tiny_dirs, task_files, tmp_path, monkeypatch):
    teachers = []
    real = sdft._completion_logits
    monkeypatch.setattr(sdft, "_completion_logits", lambda m, *a: (teachers.append(m), real(m, *a))[1])
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="sdft", stage2=STAGE))
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).state_dict()
    tuned = load_file(run / "model" / "model.safetensors")
    assert any(not torch.equal(tuned[k], base[k]) for k in tuned)
    teacher = teachers[1].model.state_dict()
    assert all(torch.equal(teacher[k], base[k]) for k in tuned)


def test_the_teacher_reads_the_demonstration_then_the_separator_then_the_example_again():
    prompt, answer, sep = torch.tensor([1, 7, 8]), torch.tensor([9, 2]), torch.tensor([5])
    assert sdft.teacher_context(prompt, answer, sep, 1, {2}).tolist() == [1, 7, 8, 9, 5, 7, 8]
    assert sdft.teacher_context(prompt, answer, sep[:0], None, set()).tolist() == [1, 7, 8, 9, 2, 1, 7, 8]


def test_a_batch_splits_into_each_rows_input_and_reference_answer_padding_dropped():
    batch = {"input_ids": torch.tensor([[1, 7, 8, 9, 2, 0], [1, 7, 7, 0, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]),
             "labels": torch.tensor([[-100, -100, -100, 9, 2, -100], [-100] * 6])}
    (p1, a1), (p2, a2) = sdft.split_batch(batch)
    assert (p1.tolist(), a1.tolist()) == ([1, 7, 8], [9, 2])
    assert (p2.tolist(), a2.tolist()) == ([1, 7, 7], [])  # no target: all input


def test_a_completion_ends_at_its_first_end_of_sequence_token():
    completion = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    assert sdft.completion_mask(completion, {2}).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


@pytest.mark.parametrize("arch, over, message", [
    ("t5", {"method": "sdft"}, "method sdft: self-distillation needs a decoder-only model, not "
                               "T5ForConditionalGeneration"),
    ("llama", {"method": "sdft", "sdft": {"alpha": 2}}, "sdft.alpha must be in [0, 1], got 2"),
    ("llama", {"method": "sdft", "sdft": {"teacher": "ema"}}, "sdft.teacher 'ema' is not one of base, live"),
    ("llama", {"method": "sdft", "sdft": {"topk": 0}}, "sdft.topk must be a positive integer, got 0"),
])
def test_sdft_settings_and_models_it_cannot_take_are_refused_in_one_line(arch, over, message, tiny_dirs, task_files,
                                                                        tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")) as e:
        promot.train(run_config(tiny_dirs[arch], task_files, tmp_path / "run", **over))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_the_live_teacher_is_the_model_in_training(tiny_dirs, task_files, tmp_path, monkeypatch):
    models = []
    real = sdft._completion_logits
    monkeypatch.setattr(sdft, "_completion_logits", lambda m, *a: (models.append(m), real(m, *a))[1])
    promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="sdft",
                            stage2={**STAGE, "steps": 1}, sdft={"teacher": "live"}))
    assert models[0] is models[1]
