"""`promot export RUN`: the tuned model as a standard HF directory in which every prompt of the run is vocabulary.

Why vocabulary: vLLM dropped prompt adapters, TGI and llama.cpp's server never had them, PEFT cannot merge a
prompt, `transformers serve` loads plain models only - but every engine serves added tokens. Each prompt [P, H]
becomes P added special tokens `<|promot:TASK:i|>` whose input embedding rows are its vectors, so the prompt is
the token string in front of a request (completions) or what the chat template adds (chat, `promot_task`).

The added rows must never be generated: these models tie input and output embeddings, so an added input row would
also be an output row scoring h·p_i. The export unties a tied head and gives every added token a copy of one
existing token's output row (the one least likely on the probe texts): its logit then equals that token's, and a
tie goes to the lower id, so greedy decoding never picks an added token, and the added tokens' share of the softmax
is P times that token's (the original tokens' logits are untouched). generation_config also suppresses them.
Cost: the head's V×H weights when the model tied them (stated in the prefixes JSON).

Token order: promot puts the prompt right after the BOS a tokenizer adds itself (`prompt_bos_id`), which is where
that tokenizer puts a text prefix too: plain completions with the prefix serve training's sequence whether the tokenizer adds
BOS (Gemma, world-tiny) or not (SmolLM2), and the chat template puts the prefix after its own BOS. The JSON says,
per route, whether the served sequence is training's (checked on the run's inputs), and gives the exact string for
engines that turn special tokens off (`prefix_without_special_tokens`). Runs recorded before that rule (prompt
before BOS) are exported as trained; their completions route is marked inexact where BOS comes first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from promot import rundir
from promot.errors import CheckpointError, ConfigError
from promot.rundir import RunRecord, read_run_info
from promot.io import atomic_dir, atomic_write_json, atomic_write_text, check_replaceable, occupied
from promot.lock import run_lock
from promot.prompt.soft_prompt import prompt_bos_id, prompt_order
from promot.serving.template import MARKER, promot_template, raw_template, token_name

log = logging.getLogger(__name__)

PREFIXES_FILE = "promot_prompts.json"
"""Beside the weights: the exact prefix string and token ids per task, and what each route serves."""
FORMAT = "promot-export/1"
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass
class Exported:
    path: Path
    tasks: dict[str, str] = field(default_factory=dict)
    """Task name → the prefix string (P prompt tokens)."""
    notes: list[str] = field(default_factory=list)
    """One line each: what a user must know (no prompt: bare model; a route that is not training's sequence)."""


def run_prompts(run_dir: Path, record: RunRecord, model, model_fp: str) -> dict[str, torch.Tensor]:
    """Every prompt of the run by task name, fingerprint-checked: its own (named after the run folder, as a run that
    continues it names it) and every prompts/<name>/ (multi-task tasks, carried prompts)."""
    from promot.runs import checked_prompt, prompt_names

    out: dict[str, torch.Tensor] = {}
    if record.prompt:
        out[run_dir.name] = checked_prompt(run_dir, None, model, model_fp)
    for name in prompt_names(run_dir):
        if name in out:
            raise CheckpointError(f"{run_dir}: prompts/{name}/ has the run's own name; rename one to export both")
        out[name] = checked_prompt(run_dir, name, model, model_fp)
    for name in out:
        if not name or set(name) - _NAME_OK:
            raise ConfigError(f"{run_dir}: task name {name!r} has characters other than letters, digits, '_.-' "
                              "(it becomes a token's spelling); rename the run or prompts/ folder")
    return out


def _specials_added(tokenizer) -> tuple[list[int], list[int]]:
    """(head, tail): the ids the tokenizer adds itself around any text (BOS, EOS)."""
    text = "promot"
    full = tokenizer(text)["input_ids"]
    bare = tokenizer(text, add_special_tokens=False)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i], full[i + len(bare) :]
    return [], []


def _probe_texts(run_dir: Path, record: RunRecord, tokenizer) -> list[str]:
    """Inputs the run was validated on (≤ 32, every task's), as the model saw them: probes for the exactness check and
    the neutral output row. Fallback when an older run's data moved: two plain strings."""
    from promot.runs import run_validation

    texts = [ex.input for examples in run_validation(run_dir, record, tokenizer).values() for ex in examples[:32]]
    return texts[:32] or ["The quick brown fox", "1 2 3"]


@torch.no_grad()
def _quietest_row(model, tokenizer, texts: list[str], add_special: bool) -> tuple[int, float]:
    """The output row the added tokens copy, and its highest probability over every position of `texts`: the
    least likely of the tokenizer's own special tokens that nothing writes (not BOS/EOS, not in the chat template:
    e.g. `<unk>`, `<pad>`), else the least likely token. A special token, because the probes cannot show what a
    model writes after its answer (an ordinary token rare on them may be common there)."""
    worst = None
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=add_special)["input_ids"]])
        top = model(input_ids=ids).logits[0].float().softmax(-1).max(0).values
        worst = top if worst is None else torch.maximum(worst, top)
    used = {tokenizer.bos_token_id, tokenizer.eos_token_id}
    template = tokenizer.chat_template or ""
    quiet = [i for i in tokenizer.all_special_ids
             if i not in used and i < worst.shape[0] and tokenizer.convert_ids_to_tokens(i) not in template]
    j = min(quiet, key=lambda i: float(worst[i])) if quiet else int(worst[: len(tokenizer)].argmin())
    return j, float(worst[j])


def _untie_and_extend(model, prompts: torch.Tensor, first: int, row: int) -> dict:
    """Put `prompts` [N, H] in input rows first..first+N (past the tokenizer's ids: rows a padded table leaves
    unused, else new ones); the head gets copies of output row `row` there, untied from the input when tied."""
    inp, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise ConfigError("export: needs an output layer without a bias (a plain LM head)")
    tied = head.weight.data_ptr() == inp.weight.data_ptr()
    old_in, old_head = inp.weight.detach(), head.weight.detach()
    rows, h = old_in.shape
    n = prompts.shape[0]
    total = max(rows, first + n)
    new_in = torch.nn.Embedding(total, h, dtype=old_in.dtype, padding_idx=inp.padding_idx)
    new_head = torch.nn.Linear(h, total, bias=False, dtype=old_head.dtype)
    with torch.no_grad():
        new_in.weight[:rows] = old_in
        new_in.weight[first : first + n] = prompts.to(old_in.dtype)
        new_head.weight[:rows] = old_head
        new_head.weight[first : first + n] = old_head[row]
    model.set_input_embeddings(new_in)
    model.set_output_embeddings(new_head)
    for cfg in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        cfg.tie_word_embeddings = False
        cfg.vocab_size = total
    added = 2 * total * h - (1 if tied else 2) * rows * h  # two tables of `total` rows, where there were 1 or 2
    return {"tied": tied, "added_parameters": added, "added_bytes": added * old_in.element_size()}


def prompt_embeds(run: str | Path, text: str, prompt_name: str | None = None) -> torch.Tensor:
    """[P+T, H]: what promot feeds the model for `text` with the run's prompt (or a named one) - the tensor vLLM's
    `--enable-prompt-embeds` takes (torch.save it, base64 it, send it as `prompt_embeds`)."""
    from promot.data import Example
    from promot.runs import load_run

    loaded = load_run(run, True, prompt_name)
    ids = torch.tensor([loaded.tokenizing.prompt_only(Example(text, "", "<prompt_embeds>"))])
    embeds, _ = loaded.lm.embed(ids, torch.ones_like(ids))
    return embeds[0].detach()


@dataclass
class _Plan:
    """What an export will do, checked before anything changes: the run, its loaded model and prompts, the tokens
    that will spell them, and the neutral output row their rows copy."""

    run_dir: Path
    out: Path
    info: RunRecord
    model: torch.nn.Module
    model_fp: str
    tokenizer: object
    prompts: dict[str, torch.Tensor]
    names: dict[str, list[str]]
    chat_run: bool
    probes: list[str]
    row: int
    row_p: float
    notes: list[str]


@dataclass
class _Applied:
    """The model and tokenizer after the prompts became tokens: their ids, the vocabulary size before them, and what
    the output rows cost."""

    ids: dict[str, list[int]]
    vocab: int
    size: dict
    prefixes: dict[str, str]
    head: list[int]
    bos: int | None
    own_template: bool


def export(run: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Exported:
    """Write RUN's tuned model with every prompt as added tokens to `out` (default RUN/export/): plan (every check,
    nothing changed), apply (tokens, rows, template), verify (served sequences against training's), write (one
    atomic folder). Refused, before anything is written: an existing `out` without `overwrite`, a run whose weights
    changed (fingerprint), a seq2seq model. A run without a prompt exports the bare model (a note says so)."""
    plan = _plan(Path(run), out, overwrite)
    applied = _apply(plan)
    routes = _routes(plan.tokenizer, applied.ids, plan.probes, plan.chat_run, applied.own_template, applied.bos)
    notes = plan.notes + [f"{name}: {r['note']}" for name, r in routes.items() if not r["exact"]]
    _write(plan, applied, routes)
    return Exported(plan.out, applied.prefixes, notes)


def _plan(run_dir: Path, out: str | Path | None, overwrite: bool) -> _Plan:
    from transformers import AutoTokenizer

    from promot.runs import load_tuned_model, run_inputs

    info = read_run_info(run_dir)
    out = Path(out) if out is not None else run_dir / rundir.EXPORT
    if occupied(out) and not overwrite:
        raise ConfigError(f"{out}: already exists (pass --overwrite to replace it)")
    check_replaceable(out, PREFIXES_FILE, "an export", [run_dir])
    inputs = run_inputs(run_dir, info)
    loaded, model_fp = load_tuned_model(run_dir, info, inputs.dtype, inputs.trust_remote_code)
    model = loaded.model.eval()
    if model.config.is_encoder_decoder:
        raise ConfigError(f"{run_dir}: export serves causal LMs; a seq2seq model's prompt sits on the encoder side, "
                          "which no server's text prefix reaches")
    prompts = run_prompts(run_dir, info, model, model_fp)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / rundir.MODEL)  # as saved: no pad token of our own
    notes = [] if prompts else [f"{run_dir}: the run has no prompt (method {info.method}); exported the bare "
                                "model"]
    names = {t: [token_name(t, i) for i in range(p.shape[0])] for t, p in prompts.items()}
    clash = [n for ns in names.values() for n in ns if n in tokenizer.get_vocab()]
    if clash or any(MARKER in tok for tok in tokenizer.get_vocab()):
        raise ConfigError(f"{run_dir}: the tokenizer already has tokens spelled '{MARKER}…' (exported before?)")
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        raise ConfigError(f"{run_dir}: the tokenizer has more ids ({len(tokenizer)}) than the model has embedding rows")
    chat_run = info.trained_in_chat(inputs.chat_template)
    probes = _probe_texts(run_dir, info, loaded.tokenizer)
    row, row_p = _quietest_row(model, tokenizer, probes, add_special=not chat_run)
    return _Plan(run_dir, out, info, model, model_fp, tokenizer, prompts, names, chat_run, probes, row, row_p, notes)


def _apply(plan: _Plan) -> _Applied:
    """The prompts as added special tokens with their rows, generation never emitting them, and the chat template
    that puts a task's prefix in place."""
    from transformers import AddedToken

    model, tokenizer, names = plan.model, plan.tokenizer, plan.names
    head, _ = _specials_added(tokenizer)
    v = len(tokenizer)
    tokenizer.add_tokens([AddedToken(n, special=True, normalized=False) for ns in names.values() for n in ns],
                         special_tokens=True)
    ids = {t: tokenizer.convert_tokens_to_ids(ns) for t, ns in names.items()}
    if plan.prompts and [i for x in ids.values() for i in x] != list(range(v, len(tokenizer))):
        raise ConfigError(f"{plan.run_dir}: the added tokens did not get the ids after the vocabulary ({v}…)")
    size = {"tied": False, "added_parameters": 0, "added_bytes": 0}
    if plan.prompts:
        size = _untie_and_extend(model, torch.cat(list(plan.prompts.values())), v, plan.row)
        gen = model.generation_config
        gen.suppress_tokens = sorted({*(gen.suppress_tokens or []), *range(v, len(tokenizer))})
    prefixes = {t: "".join(ns) for t, ns in names.items()}
    head_text = "".join(tokenizer.convert_ids_to_tokens(head))
    bos = prompt_bos_id(tokenizer) if plan.info.prompt_after_bos else None  # as load_run places the prompt
    own_template = bool(tokenizer.chat_template)
    base_template = tokenizer.chat_template or raw_template(head_text)
    tokenizer.chat_template = promot_template(prefixes, base_template, after_bos=bos is not None)
    return _Applied(ids, v, size, prefixes, head, bos, own_template)


def _write(plan: _Plan, applied: _Applied, routes: dict) -> None:
    """The exported folder, atomically, under the output's lock: model, tokenizer, prefixes.json and a model card."""
    tokenizer, ids, v, size = plan.tokenizer, applied.ids, applied.vocab, applied.size
    record = {
        "format": FORMAT, "run": str(plan.run_dir.resolve()), "method": plan.info.method,
        "model_fingerprint": plan.model_fp,
        "chat_template_kwarg": "promot_task",
        "tasks": {t: {"prefix": applied.prefixes[t], "token_ids": ids[t], "length": len(ids[t]),
                      "prefix_without_special_tokens": "".join(tokenizer.convert_ids_to_tokens(
                          prompt_order(ids[t], applied.head, applied.bos)))}
                  for t in plan.prompts},
        "routes": routes,
        "output_rows": {"copied_from": {"id": plan.row, "token": tokenizer.convert_ids_to_tokens(plan.row),
                                        "max_probability_on_probes": plan.row_p},
                        "untied": size["tied"], "added_parameters": size["added_parameters"],
                        "added_bytes": size["added_bytes"], "suppress_tokens": list(range(v, len(tokenizer)))},
    }
    with run_lock(plan.out), atomic_dir(plan.out) as tmp:  # one writer of `out`, as for every run directory
        plan.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / PREFIXES_FILE, record)
        atomic_write_text(tmp / rundir.MODEL_CARD, model_card(plan.run_dir, record))


def _routes(tokenizer, ids: dict[str, list[int]], probes: list[str], chat_run: bool, own_template: bool,
            bos: int | None) -> dict:
    """Per API, does the served token sequence equal training's (the input as the run tokenized it, the prompt in
    `prompt_order`'s place; `bos`: the BOS id the prompt follows, None if it goes first)? Checked with the exported
    tokenizer on the probe texts, for the first task (all are spelled alike)."""
    if not ids:
        return {}
    task, p = next(iter(ids.items()))
    prefix = "".join(tokenizer.convert_ids_to_tokens(p))
    if chat_run:
        comp = {"exact": False, "note": "the run trained in the chat template; on completions send the template's "
                "text after the prefix with add_special_tokens off, or use the chat API"}
    else:
        same = all(tokenizer(prefix + x)["input_ids"] == prompt_order(p, tokenizer(x)["input_ids"], bos)
                   for x in probes)
        comp = {"exact": same, "note": "" if same else "the tokenizer adds BOS in front of the prefix and this run "
                "put its prompt before BOS (a record from before the after-BOS rule): exact on engines that take "
                "add_special_tokens=false with prefix_without_special_tokens, else use the chat API"}

    def chat(x: str, t: str | None) -> list[int]:
        return list(tokenizer.apply_chat_template([{"role": "user", "content": x}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=False, promot_task=t))

    texts = probes if not chat_run else ["Hello, how are you?", "1 2 3"]
    if chat_run or not own_template:
        trained = (lambda x: chat(x, None)) if chat_run else (lambda x: tokenizer(x)["input_ids"])
        same = all(chat(x, task) == prompt_order(p, trained(x), bos) and chat(x, None) == trained(x) for x in texts)
        chat_route = {"exact": same, "note": "" if same else "the chat template's tokens differ from training's"}
    else:
        chat_route = {"exact": False, "note": "the run trained on raw text and the chat API wraps it in the model's "
                      "template; use completions for training's sequence"}
    return {"completions": comp, "chat": chat_route}


def model_card(run_dir: Path, record: dict) -> str:
    """README.md of the exported directory: the run's card plus how to pick a task per request."""
    card_path = run_dir / rundir.MODEL / rundir.MODEL_CARD
    card = card_path.read_text() if card_path.is_file() else f"# {run_dir.name}\n"
    lines = ["", "## Serving (promot export)", ""]
    if not record["tasks"]:
        lines.append("No prompt: this is the tuned model alone.")
    else:
        lines += ["Each task's soft prompt is a run of added special tokens. Completions: put the task's prefix in "
                  "front of the text. Chat: pass `chat_template_kwargs: {\"promot_task\": TASK}`; without it the "
                  "model answers bare (the way ProMoT serves every other task). Exact strings: "
                  f"`{PREFIXES_FILE}`.", "", "| task | prefix |", "|---|---|"]
        lines += [f"| {t} | `{v['prefix']}` |" for t, v in record["tasks"].items()]
        for name, r in record["routes"].items():
            if not r["exact"]:
                lines += ["", f"Note ({name}): {r['note']}."]
    return card.rstrip() + "\n" + "\n".join(lines) + "\n"
