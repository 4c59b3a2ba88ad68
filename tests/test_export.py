"""`promot export`: the run as a plain HF directory in which every prompt is added vocabulary.

Checked with plain transformers (no promot model code): the prompt rows are the prompt, the bare model is the tuned
model, the prompted sequence gives PromptedLM's logits, the chat template adds the prompt only on request, added
tokens are never the argmax; bad input is one line and exit 2 with nothing written.
"""
from __future__ import annotations

import json
import os

import pytest
import torch
import yaml
from conftest import run_config

import promot
from promot.cli import main
from promot.prompt import load_prompt
from promot.prompt.soft_prompt import prompt_order
from promot.serving import PREFIXES_FILE, export, prompt_embeds

TEXTS = ["in: a b c out:", "in: 3 4 out: 7 ; in: 1 2 out:", "in: d e f g out: true ; in: 5 n out:"]


def world_config(out, steps: int = 4) -> dict:
    """The demo's world config at a budget that only trains a few steps (monitor off)."""
    from promot.world.demo import demo_config

    cfg = demo_config(quick=True)
    cfg["monitor"] = {}
    cfg["stage1"].update(steps=steps, eval_every=steps, batch_size=8)
    cfg["stage2"].update(steps=steps, eval_every=steps, warmup_steps=0, batch_size=8)
    cfg["eval"]["limit"] = 8
    cfg["output_dir"] = str(out)
    return cfg


@pytest.fixture(scope="session")
def world_run(tmp_path_factory):
    return promot.train(world_config(tmp_path_factory.mktemp("world") / "wrun", steps=2))


@pytest.fixture(scope="session")
def world_export(world_run, tmp_path_factory):
    return export(world_run, tmp_path_factory.mktemp("exports") / "world")


def _plain(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


def test_prompt_rows_bare_logits_and_prompted_logits_are_the_runs(world_run, world_export):
    run = promot.load_run(world_run)
    model, tok = _plain(world_export.path)
    record = json.loads((world_export.path / PREFIXES_FILE).read_text())
    (task, entry), = record["tasks"].items()
    assert task == world_run.name and world_export.tasks[task] == entry["prefix"]
    prompt = run.lm.prompt.detach()
    assert torch.equal(model.get_input_embeddings().weight[entry["token_ids"]], prompt)
    assert not model.config.tie_word_embeddings and record["output_rows"]["untied"]
    v = run.lm.model.config.vocab_size
    assert record["output_rows"]["added_parameters"] == v * 128 + 2 * prompt.numel()
    with torch.no_grad():
        for text in TEXTS:
            ids = run.tokenizer(text, return_tensors="pt")["input_ids"]
            tuned = run.lm.model(input_ids=ids).logits
            bare = model(input_ids=ids).logits
            # the bare export is the tuned model (a head with more rows may round differently in the last bit)
            assert torch.allclose(bare[..., :v], tuned, rtol=0, atol=1e-5)
            assert (bare[..., v:].max(-1).values < bare[..., :v].max(-1).values).all()  # added: never the argmax
            trained = prompt_order(entry["token_ids"], ids[0].tolist(), tok.bos_token_id)  # BOS, prompt, text
            assert trained[:1] == [tok.bos_token_id] and trained != entry["token_ids"] + ids[0].tolist()
            served = tok(entry["prefix"] + text, return_tensors="pt")["input_ids"]  # the tokenizer adds BOS
            bare_served = tok(entry["prefix_without_special_tokens"] + text, add_special_tokens=False,
                              return_tensors="pt")["input_ids"]
            assert served[0].tolist() == bare_served[0].tolist() == trained
            assert torch.allclose(model(input_ids=served).logits[:, -ids.shape[1]:, :v], run.lm(ids).logits,
                                  rtol=0, atol=1e-5)
    assert record["routes"]["completions"]["exact"] is True and record["routes"]["chat"]["exact"] is True
    assert model.generation_config.suppress_tokens == entry["token_ids"]


def test_chat_template_adds_the_prompt_on_request_only(world_run, world_export):
    from jinja2.exceptions import TemplateError

    run = promot.load_run(world_run)
    _, tok = _plain(world_export.path)
    (task, entry), = json.loads((world_export.path / PREFIXES_FILE).read_text())["tasks"].items()

    def chat(text, **kw):
        return list(tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False, **kw))

    for text in TEXTS:
        trained = run.tokenizing.input_ids(text)  # what training and `promot generate` feed after the prompt
        assert chat(text) == trained and chat(text, promot_task=None) == trained
        assert chat(text, promot_task=task) == prompt_order(entry["token_ids"], trained, tok.bos_token_id)
    with pytest.raises(TemplateError, match="unknown promot_task \"nope\""):
        chat(TEXTS[0], promot_task="nope")
    with pytest.raises(TemplateError, match="promot prompt token"):
        chat(entry["prefix"] + TEXTS[0])  # user text never becomes the prompt


def test_prompt_embeds_are_what_promot_feeds_the_model(world_run):
    run = promot.load_run(world_run)
    ids = torch.tensor([run.tokenizing.input_ids(TEXTS[1])])
    expected, _ = run.lm.embed(ids, torch.ones_like(ids))
    got = prompt_embeds(world_run, TEXTS[1])
    assert got.shape == (run.lm.num_virtual_tokens + ids.shape[1], 128) and torch.equal(got, expected[0])


def test_export_refuses_bad_input_with_one_line_and_writes_nothing(world_run, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(world_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --overwrite replaces an earlier export only: not another folder, the run itself, its model or a folder above it
    for target in (out, world_run, world_run / "model", world_run.parent):
        assert main(["export", str(world_run), "--out", str(target), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and ("not an export" in err or "which this job reads" in err), err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (world_run / "run.json").is_file()
    assert (world_run / "model" / "model.safetensors").is_file()
    (out / "keep.txt").unlink()
    assert main(["export", str(world_run), "--out", str(out)]) == 0  # an empty folder is taken
    assert main(["export", str(world_run), "--out", str(out), "--overwrite"]) == 0
    assert (out / PREFIXES_FILE).is_file()
    # weights that no longer match run.json: refused, nothing written
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(world_run, changed)
    from safetensors.torch import load_file, save_file

    weights = changed / "model" / "model.safetensors"
    state = load_file(weights)
    key = next(iter(state))
    state[key] = state[key] + 1e-3
    save_file(state, weights, metadata={"format": "pt"})
    assert main(["export", str(changed), "--out", str(tmp_path / "never")]) == 2
    assert "fingerprint" in capsys.readouterr().err and not (tmp_path / "never").exists()


def test_run_without_prompt_exports_the_bare_model_and_says_so(tiny_dirs, task_files, tmp_path, capsys):
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "ft", method="finetune"))
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    out = capsys.readouterr().out
    assert "has no prompt (method finetune); exported the bare model" in out
    record = json.loads((tmp_path / "exp" / PREFIXES_FILE).read_text())
    assert record["tasks"] == {} and record["output_rows"]["added_parameters"] == 0
    model, tok = _plain(tmp_path / "exp")
    assert model.config.vocab_size == len(tok) == promot.load_run(run).lm.model.config.vocab_size


def test_multitask_and_carried_prompts_are_exported_by_name(tiny_dirs, task_files, tmp_path):
    short = {"stage1": {"steps": 2, "lr": 0.3, "batch_size": 8, "eval_every": 2},
             "stage2": {"steps": 2, "lr": 1e-3, "batch_size": 8, "eval_every": 2}}
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "mt", **short)
    data = cfg.pop("data")
    cfg["tasks"] = [{"name": "label", "data": data}, {"name": "echo", "data": {**data, "completion": "{hypothesis}"},
                                                      "metric": "exact_match", "max_new_tokens": 4}]
    multi = promot.train(cfg)
    seq_cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "next", seed=1, **short)
    seq_cfg["model"] = {"init_from": str(multi)}
    seq = promot.train(seq_cfg)
    for run, names in ((multi, {"label", "echo"}), (seq, {"next", "label", "echo"})):
        done = export(run, tmp_path / f"exp-{run.name}")
        record = json.loads((done.path / PREFIXES_FILE).read_text())
        assert set(record["tasks"]) == names == set(done.tasks)
        model, tok = _plain(done.path)
        rows = model.get_input_embeddings().weight
        for name, entry in record["tasks"].items():
            folder = run / ("prompt" if name == run.name else f"prompts/{name}")
            assert torch.equal(rows[entry["token_ids"]], load_prompt(folder).embeddings)
            assert tok(entry["prefix"], add_special_tokens=False)["input_ids"] == entry["token_ids"]
            turn = [{"role": "user", "content": "a b c"}]
            ids = tok.apply_chat_template(turn, add_generation_prompt=True, tokenize=True, return_dict=False,
                                          promot_task=name)
            bare = tok.apply_chat_template(turn, add_generation_prompt=True, tokenize=True, return_dict=False)
            assert list(ids) == prompt_order(entry["token_ids"], list(bare), tok.bos_token_id)


def test_lm_eval_hflm_on_the_export_scores_item_for_item_as_promot_tuned(world_run, world_export):
    """Plain lm-eval (`--model hf --model_args pretrained=DIR`) on the exported directory = `promot eval`'s `tuned`."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from promot.evaluate.runner import EvalSpec, run_lm_eval, task_manager

    tasks = ["world_copy", "world_parity", "world_true_false"]
    spec = EvalSpec(tasks=tasks, shots=[1], limit=12, batch_size=8, bf16=False)
    manager = task_manager(None, tasks)
    run = promot.load_run(world_run, with_prompt=False)
    ours = run_lm_eval(run.lm, run.tokenizer, spec, 1, manager)
    plain = simple_evaluate(model=HFLM(pretrained=str(world_export.path), batch_size=8, device="cpu"), tasks=tasks,
                            num_fewshot=1, limit=12, task_manager=manager, log_samples=True, bootstrap_iters=0,
                            random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
    for task in tasks:
        a = sorted(ours["samples"][task], key=lambda s: s["doc_id"])
        b = sorted(plain["samples"][task], key=lambda s: s["doc_id"])
        assert [s["filtered_resps"] for s in a] == [s["filtered_resps"] for s in b]
        assert [s["exact_match"] for s in a] == [s["exact_match"] for s in b]
        assert ours["results"][task] == plain["results"][task]


def test_serve_reuses_an_export_of_the_same_weights_and_refuses_another(world_run, world_export, tmp_path):
    from promot.errors import ConfigError
    from promot.serving.serve import exported_dir

    stamp = (world_export.path / "model.safetensors").stat().st_mtime_ns
    again = exported_dir(world_run, world_export.path)
    assert again.tasks == world_export.tasks and (world_export.path / "model.safetensors").stat().st_mtime_ns == stamp
    other = tmp_path / "other"
    other.mkdir()
    record = json.loads((world_export.path / PREFIXES_FILE).read_text())
    (other / PREFIXES_FILE).write_text(json.dumps({**record, "model_fingerprint": "0" * 32}))
    with pytest.raises(ConfigError, match="export of other weights"):
        exported_dir(world_run, other)


def test_export_api_is_in_the_package_root_and_config_survives(world_run, world_export):
    assert promot.export is export
    assert yaml.safe_load((world_run / "config.yaml").read_text())["method"] == "promot"
    card = (world_export.path / "README.md").read_text()
    assert "promot_task" in card and world_export.tasks[world_run.name] in card


# --- served: `transformers serve` on the exported directory, queried with the openai client --------------------

def _inputs(n: int = 20) -> list[str]:
    """World-suite questions, 0- and 1-shot, from the target and from other tasks."""
    from promot.evaluate.suites import SUITES_DIR

    data = SUITES_DIR / "world" / "data"
    out = []
    for i, task in enumerate(["true_false", "copy", "parity", "true_false", "reverse", "has_vowel"] * 4):
        rows = [json.loads(x) for x in (data / f"{task}.test.jsonl").read_text().splitlines()]
        demo = [json.loads(x) for x in (data / f"{task}.train.jsonl").read_text().splitlines()][i]
        q = rows[i]["question"]
        out.append(q if i % 2 else f"{demo['question']} {demo['answer']} ; {q}")
    return out[:n]


@pytest.fixture(scope="module")
def server(world_export, tmp_path_factory):
    """One `transformers serve` for every route: bounded start (180 s), always stopped."""
    import socket
    import subprocess
    import time
    import urllib.request

    import openai

    from promot.serving.serve import serve_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(serve_command(world_export.path, "127.0.0.1", port), stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - started > 180:
                    pytest.fail(f"transformers serve did not come up: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=60, max_retries=0)
        print(f"transformers serve up in {time.monotonic() - started:.1f} s")
        yield client, str(world_export.path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_served_routes_answer_as_promot_generate_token_for_token(server, world_run, world_export):
    client, name = server
    texts = _inputs()
    run = promot.load_run(world_run)
    (task, entry), = json.loads((world_export.path / PREFIXES_FILE).read_text())["tasks"].items()
    with_prompt = [run.generate([t], prompt=True, max_new_tokens=8)[0] for t in texts]  # one at a time, as served
    bare = [run.generate([t], prompt=False, max_new_tokens=8)[0] for t in texts]
    assert with_prompt != bare  # the prompt matters on these inputs

    def complete(prompt: str) -> str:
        return client.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=0).choices[0].text

    def chat(text: str, **kwargs) -> str:
        extra = {"chat_template_kwargs": kwargs} if kwargs else None
        reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": text}],
                                               max_tokens=8, temperature=0, extra_body=extra)
        return reply.choices[0].message.content

    assert [chat(t, promot_task=task) for t in texts] == with_prompt
    assert [chat(t) for t in texts] == bare
    assert [complete(t) for t in texts] == bare
    served = [complete(entry["prefix"] + t) for t in texts]  # the tokenizer adds BOS, then the prefix: training's
    assert served == with_prompt
    for answer in [*served, *with_prompt, *bare]:
        assert "promot:" not in answer


def test_served_unknown_task_is_a_400_that_says_why(server):
    """Not a bare answer, not a bare 500: the client reads the template's reason (OpenAI's error shape)."""
    import openai

    client, name = server
    with pytest.raises(openai.BadRequestError, match='unknown promot_task "nope" \\(this model\'s tasks: '):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "in: a out:"}],
                                       max_tokens=4, temperature=0,
                                       extra_body={"chat_template_kwargs": {"promot_task": "nope"}})
    with pytest.raises(openai.BadRequestError, match="the spelling of a promot prompt token; refused"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "in: <|promot:x:0|> out:"}],
                                       max_tokens=4, temperature=0)


def _no_bos_model(directory):
    """The tiny Llama with a tokenizer that adds nothing itself (as SmolLM2's) and a chat template writing BOS."""
    from conftest import WORDS, make_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>")
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }} answer :"
                         "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
    make_model("llama").save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("chat_trained", [False, True])
def test_tokenizer_without_bos_completions_are_exact_and_chat_matches_training(chat_trained, task_files, tmp_path):
    model_dir = _no_bos_model(tmp_path / "m")
    cfg = run_config(model_dir, task_files, tmp_path / "run", method="prompt-tuning",
                     stage1={"steps": 2, "lr": 0.3, "batch_size": 8, "eval_every": 2})
    cfg["data"]["chat_template"] = chat_trained
    run_dir = promot.train(cfg)
    done = export(run_dir, tmp_path / "exp")
    record = json.loads((done.path / PREFIXES_FILE).read_text())
    (task, entry), = record["tasks"].items()
    run = promot.load_run(run_dir)
    model, tok = _plain(done.path)
    text = "a c f question : it has c ? answer :"
    chat = list(tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False, promot_task=task))
    if chat_trained:  # training wrapped the input in the template: the chat route gives that sequence
        from promot.data import Example, with_chat_template

        wrapped = with_chat_template([Example(text, "", "t")], run.tokenizer)[0].input
        trained = run.tokenizing.input_ids(wrapped)
        # the template writes BOS but the tokenizer adds none itself (SmolLM2's <|im_start|>): the prompt goes first
        assert trained[0] == tok.bos_token_id and chat == entry["token_ids"] + trained
        assert record["routes"]["chat"]["exact"] is True
        assert record["routes"]["completions"]["exact"] is False  # stated: use the chat API
    else:  # raw text: completions with the prefix is exactly training's sequence
        assert record["routes"]["completions"]["exact"] is True
        assert record["routes"]["chat"]["exact"] is False  # stated: the chat API wraps it in the model's template
        assert tok(entry["prefix"] + text)["input_ids"] == entry["token_ids"] + run.tokenizing.input_ids(text)
        ids = torch.tensor([tok(entry["prefix"] + text)["input_ids"]])
        with torch.no_grad():
            assert torch.allclose(model(input_ids=ids).logits[:, len(entry["token_ids"]):, :len(run.tokenizer)],
                                  run.lm(ids[:, len(entry["token_ids"]):]).logits, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_export_smollm2_prefix_is_training_sequence_and_head_is_untied(tmp_path):
    """SmolLM2-135M-Instruct (adds no BOS, has a chat template): completions with the prefix are exact."""
    from pathlib import Path

    pytest.importorskip("gguf")
    example = Path(__file__).parent.parent / "examples" / "has_a"
    cfg = {"model": {"name": "smollm2-135m-instruct"},
           "data": {"train": str(example / "train.jsonl"), "validation": str(example / "validation.jsonl"),
                    "template": "{premise} question: {hypothesis} Is it true or false? answer:",
                    "completion": "{label}", "max_length": 64},
           "method": "prompt-tuning", "prompt": {"length": 4},
           "stage1": {"steps": 2, "lr": 0.3, "batch_size": 4}, "eval": {"limit": 4, "max_new_tokens": 2},
           "bf16": False, "output_dir": str(tmp_path / "run")}
    run_dir = promot.train(cfg)
    done = export(run_dir, tmp_path / "exp")
    record = json.loads((done.path / PREFIXES_FILE).read_text())
    (task, entry), = record["tasks"].items()
    assert record["routes"]["completions"]["exact"] is True
    assert record["output_rows"]["untied"] and record["output_rows"]["added_parameters"] == 49152 * 576 + 2 * 4 * 576
    run = promot.load_run(run_dir)
    model, tok = _plain(done.path)
    text = "Anna has a dog. question: Anna has a dog. Is it true or false? answer:"
    ids = torch.tensor([tok(entry["prefix"] + text)["input_ids"]])
    assert ids[0, :4].tolist() == entry["token_ids"]
    with torch.no_grad():
        ours = run.lm(ids[:, 4:]).logits
        served = model(input_ids=ids).logits[:, 4:]
    torch.testing.assert_close(served[..., :49152], ours, atol=1e-4, rtol=1e-4)
    assert (served[..., 49152:].max(-1).values < served[..., :49152].max(-1).values).all()
    chat = list(tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False, promot_task=task))
    bare = list(tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False))
    assert chat == entry["token_ids"] + bare
