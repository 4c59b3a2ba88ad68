"""The soft prompt: a [P, H] matrix prepended to the input embeddings of a HF LM, removable at will.

`PromptedLM` wraps any causal LM (Llama, Qwen, Gemma, GPT-2 …) or T5-family seq2seq model. We own this ~150-line
wrapper instead of PEFT's PeftModel because ProMoT trains the *base* with the prompt attached and frozen, which PEFT
neither supports nor saves (its save path keeps only the prompt); the on-disk prompt stays in PEFT's format.

Shapes: input_ids [B, T] → inputs_embeds [B, P+T, H], attention_mask [B, P+T]; causal logits come back as [B, T, V]
(prompt positions removed); seq2seq prompts go on the encoder side only.

Where the prompt goes: first, or right after BOS when a row starts with `bos_id` — the BOS the tokenizer puts in
front of plain text itself (Gemma, Llama, the world model; `prompt_bos_id`). Every inference server puts a text
prefix after the BOS its tokenizer adds, so a prompt trained there is served exactly by its exported token string
(`promot export`), and models like Gemma keep BOS at position 0. (PEFT puts virtual tokens before BOS, as
`bos_id=None` does; runs recorded before this rule keep that order.)
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from promot.distributed import gathered


def plain_model(model: nn.Module) -> nn.Module:
    """A PEFT-wrapped model's base, else the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def inner_state(state_dict: dict) -> dict:
    """The model's part of a PromptedLM state dict ('model.' prefix dropped; the prompt left out)."""
    return {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}


def _accepts_logits_mask(model: nn.Module) -> bool:
    """Does this causal LM take a boolean [B, T] `logits_to_keep`? transformers' shared `slice_logits_to_keep`
    does (5.x: nearly every model); a model with its own slicing may not, and then gets full logits."""
    base = plain_model(model)  # see through PEFT wrappers
    try:
        return "slice_logits_to_keep" in inspect.getsource(type(base).forward)
    except (OSError, TypeError):
        return False


def after_bos_order(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int, bos_id: int,
                    prompted: torch.Tensor | None = None) -> torch.Tensor | None:
    """The gather order [B, P+T] that turns `prompt | text` into `leading pads | BOS | prompt | rest` for rows whose
    first real token is BOS (other rows, and rows `prompted` [B] marks False, unchanged: their prompt slots are
    masked and their BOS must stay where its output predicts the next token), or None when no row moves. With any
    padding the output at the last prompt slot then predicts the token after BOS, so `logits[:, -T:]` and the
    training loss's `P + j` indexing keep their meaning."""
    first = attention_mask.long().argmax(1, keepdim=True)                       # each row's first real token
    starts = input_ids.gather(1, first) == bos_id                               # [B, 1]
    if prompted is not None:
        starts &= prompted.to(starts.device, torch.bool).unsqueeze(1)
    if not starts.any():
        return None
    pos = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    text = torch.where(pos < first, 0, 3)
    text = torch.where(pos == first, 1, text)
    text = torch.where(starts, text, 3)                                         # rows without BOS: prompt first
    keys = torch.cat([text.new_full((input_ids.shape[0], prompt_length), 2), text], dim=1)
    return torch.sort(keys, dim=1, stable=True).indices


def prompt_bos_id(tokenizer) -> int | None:
    """The BOS a prompt follows: the one the tokenizer puts in front of plain text itself, where a server's text
    prefix lands after it. None when it adds none — SmolLM2 names `<|im_start|>` its BOS, but only its chat
    template writes it, so the prompt stays first there (in front of the template's text)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    own = tokenizer("promot")["input_ids"][:1] == [bos]
    in_text = tokenizer("promot", add_special_tokens=False)["input_ids"][:1] == [bos]
    return bos if own and not in_text else None


def prompt_order(prompt_ids: list[int], ids: list[int], bos_id: int | None) -> list[int]:
    """As token ids, the sequence `embed` builds for one unpadded row: what an exported prompt's tokens must spell."""
    if bos_id is not None and ids[:1] == [bos_id]:
        return ids[:1] + prompt_ids + ids[1:]
    return prompt_ids + ids


def padding_first(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row to pad | prompt | text. Prepending the prompt to left-padded text puts the padding between
    prompt and text; with a sliding-window model those pad slots would take window positions from the prompt, so a
    padded row would generate differently from the same row alone. A stable sort keeps prompt and text in order."""
    order = torch.sort(mask.long(), dim=1, stable=True).indices
    return embeds.gather(1, order.unsqueeze(-1).expand_as(embeds)), mask.gather(1, order)


class PromptedLM(nn.Module):
    """A HF LM plus an optional soft prompt. `prompt=None` is the plain model, bit for bit.

    `prompt` is one prompt [P, H], or a bank of per-task prompts [T, P, H] (training: N ≥ 1 tasks); with a bank of
    several, every call names each example's task with `task_ids` [B], so one mixed batch carries each example's own
    prompt; a bank of one needs no `task_ids`."""

    accepts_loss_kwargs = True  # lets Trainer pass num_items_in_batch, so grad accumulation averages correctly

    def __init__(
        self,
        model: nn.Module,
        prompt: torch.Tensor | None = None,
        train_prompt: bool = False,
        label_smoothing: float = 0.0,
        bos_id: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.is_seq2seq = bool(model.config.is_encoder_decoder)
        self.label_smoothing = label_smoothing
        self.prompt = None if prompt is None else nn.Parameter(prompt.detach().float().clone(), train_prompt)
        self.bos_id = None if self.is_seq2seq else bos_id
        """Rows starting with this id get the prompt after it (`prompt_bos_id`); None: the prompt always first."""
        params = inspect.signature(model.forward).parameters
        self._takes_position_ids = "position_ids" in params and not self.is_seq2seq
        self._takes_logits_to_keep = "logits_to_keep" in params
        self._masks_logits = _accepts_logits_mask(model)

    @property
    def _no_split_modules(self) -> list[str] | None:
        """The inner model's block classes: what FSDP's transformer auto-wrap shards (the prompt stays on the root)."""
        return getattr(plain_model(self.model), "_no_split_modules", None)

    @property
    def num_virtual_tokens(self) -> int:
        return 0 if self.prompt is None else self.prompt.shape[-2]

    def task_prompt(self, task_id: int = 0) -> torch.Tensor:
        """[P, H]: one task's prompt, a view of the parameter (a single prompt is every task's)."""
        return self.prompt if self.prompt.dim() == 2 else self.prompt[task_id]

    def _prompts(self, batch: int, task_ids: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """[B, P, H]: the one prompt for every example, or each example's own from the bank."""
        if self.prompt.dim() == 2 or (task_ids is None and self.prompt.shape[0] == 1):
            return self.task_prompt().to(dtype).unsqueeze(0).expand(batch, -1, -1)  # gradients reduce as for [P, H]
        if task_ids is None:
            raise ValueError("a prompt bank [T, P, H] needs task_ids [B] naming each example's task")
        return self.prompt[task_ids.to(self.prompt.device)].to(dtype)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task_ids: torch.Tensor | None = None,
              prompt_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T] ids → ([B, P+T, H] embeddings, [B, P+T] mask), the prompt first or after a leading BOS (module
        docstring). `prompt_mask` [B] bool: rows marked False keep the prompt's slots masked out (attended by
        nothing, positions skip them), so they see the bare model in the same batch (replay examples)."""
        embeds = self.model.get_input_embeddings()(input_ids)
        batch = input_ids.shape[0]
        prompt = self._prompts(batch, task_ids, embeds.dtype)
        slots = attention_mask.new_ones(batch, self.num_virtual_tokens)
        if prompt_mask is not None:
            slots = slots * prompt_mask.to(slots.device, slots.dtype).unsqueeze(1)
        embeds, mask = torch.cat([prompt, embeds], dim=1), torch.cat([slots, attention_mask], dim=1)
        order = None if self.bos_id is None else after_bos_order(input_ids, attention_mask, prompt.shape[1],
                                                                 self.bos_id, prompt_mask)
        if order is None:
            return embeds, mask
        return embeds.gather(1, order.unsqueeze(-1).expand_as(embeds)), mask.gather(1, order)

    def _inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                task_ids: torch.Tensor | None = None, prompt_mask: torch.Tensor | None = None) -> dict:
        if self.prompt is None:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        else:
            embeds, mask = self.embed(input_ids, attention_mask, task_ids, prompt_mask)
            inputs = {"inputs_embeds": embeds, "attention_mask": mask}
        if self._takes_position_ids:
            # Positions count real tokens only, so padding anywhere leaves them as in an unpadded row.
            inputs["position_ids"] = (inputs["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
        return inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        **kwargs,
    ):
        """Causal: labels [B, T] align with input_ids (shifted inside); logits [B, T, V], or [N, V] over the N target
        positions in training mode with labels. Seq2seq: labels [B, L] are decoder targets, logits [B, L, V]."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = self._inputs(input_ids, attention_mask, task_ids, prompt_mask)
        if self.is_seq2seq:
            out = self.model(**inputs, labels=labels, **kwargs)
            logits, targets = out.logits, labels
        elif self.training and labels is not None and self._masks_logits:
            # Training: project only the positions that predict a target token. The LM head and its fp32 softmax
            # over the input part are often the largest activation (49k-262k vocabularies); out.logits is [N, V].
            wanted = labels[:, 1:] != -100                                            # [B, T-1]
            keep = torch.zeros(inputs["attention_mask"].shape, dtype=torch.bool, device=labels.device)
            keep[:, self.num_virtual_tokens : self.num_virtual_tokens + wanted.shape[1]] = wanted
            out = self.model(**inputs, logits_to_keep=keep, **kwargs)
            logits, targets = out.logits, labels[:, 1:][wanted]
        else:
            if self.prompt is not None and self._takes_logits_to_keep:
                inputs["logits_to_keep"] = input_ids.shape[1]  # skip the LM head on prompt positions
            out = self.model(**inputs, **kwargs)
            out.logits = out.logits[:, -input_ids.shape[1] :]
            logits, targets = out.logits[:, :-1], None if labels is None else labels[:, 1:]
        out.loss = None if labels is None else self._loss(logits, targets, num_items_in_batch)
        return out

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, num_items: int | torch.Tensor | None) -> torch.Tensor:
        """Token cross-entropy over target positions (-100 ignored), in fp32, optional label smoothing."""
        total = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1).to(logits.device),
            ignore_index=-100,
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        count = num_items if num_items is not None else (targets != -100).sum().clamp(min=1)
        if isinstance(count, torch.Tensor):
            count = count.to(total.device)
        return total / count

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 task_ids: torch.Tensor | None = None, **gen_kwargs) -> torch.Tensor:
        """Greedy/sampled continuation through HF `generate` (KV cache; prompt injected once at prefill).

        Causal inputs must be left-padded. Returns only the new tokens, [B, N].
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        with gathered(self):  # FSDP2: the prompt and the embeddings live on the root unit
            inputs = self._inputs(input_ids, attention_mask, task_ids)
            inputs.pop("position_ids", None)  # generate derives positions from the mask itself
            if "inputs_embeds" in inputs and not self.is_seq2seq:
                inputs["inputs_embeds"], inputs["attention_mask"] = padding_first(inputs["inputs_embeds"],
                                                                                  inputs["attention_mask"])
            out = self.model.generate(**inputs, **gen_kwargs)
        if self.is_seq2seq:
            return out[:, 1:]  # drop the decoder start token
        return out if "inputs_embeds" in inputs else out[:, input_ids.shape[1] :]
