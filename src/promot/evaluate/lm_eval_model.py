"""An lm-eval model that scores a model with a soft prompt attached — correctly.

lm-eval's HFLM slices continuation logits at `inplen - contlen`, with no offset for virtual tokens (lm-eval PR
#533, open), so a PEFT prompt-tuned model is mis-scored. We subclass HFLM (its batching, tokenisation, caching and
request handling stay) and route its two model calls through `PromptedLM`, whose logits never include the prompt
positions and whose generation injects the prompt once at prefill. Greedy `generate_until` requests go through
`GreedyPool` instead of one `generate` per batch (shared prefix encoded once, rows leave and join the batch as they
stop): the same generations, faster (docs/RESULTS.md, "Where `promot eval`'s time goes").

    lm = PromptedHFLM(prompted_lm, tokenizer, batch_size=16)                 # in Python
    promot lm-eval --model promot --model_args run=RUN,prompt=on --tasks …    # the lm_eval CLI, model registered
"""
from __future__ import annotations

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, has_bos_prefix, normalize_gen_kwargs, \
    postprocess_generated_text
from lm_eval.models.utils_hf import stop_sequences_criteria

from promot.precision import resolve_bf16
from promot.prompt import PromptedLM
from promot.prompt.greedy_pool import GreedyPool, Request, supports

_GREEDY_KEYS = {"do_sample", "temperature", "until", "max_gen_toks"}
"""What a request's generation kwargs may hold for the pool to serve it; anything else goes to `generate`."""


@register_model("promot")
class PromptedHFLM(HFLM):
    """HFLM over a PromptedLM (prompt attached or not). Accepts an in-memory PromptedLM or a run directory."""

    def __init__(
        self,
        pretrained: PromptedLM | None = None,
        tokenizer=None,
        run: str | None = None,
        prompt: str | bool = "on",
        batch_size: int | str = 16,
        bf16: bool | str = False,
        greedy_pool: bool | str = True,
        **kwargs,
    ) -> None:
        if run is not None:  # the lm_eval CLI path: --model_args run=RUN,prompt=on|off
            from promot.runs import load_run

            loaded = load_run(run, with_prompt=str(prompt).lower() in ("on", "true", "1", "yes"))
            pretrained, tokenizer = loaded.lm, loaded.tokenizer
        if not isinstance(pretrained, PromptedLM):
            raise TypeError("PromptedHFLM needs a PromptedLM (or run=RUN_DIR)")
        self.prompted = pretrained.eval()
        self.greedy_pool = str(greedy_pool).lower() in ("true", "1", "yes", "on")
        """Greedy requests through `GreedyPool` (default); off: HFLM's own batches of `generate`, for comparison."""
        if resolve_bf16(bf16):  # true / false / auto (bf16 where this machine runs it natively); default exact fp32
            kwargs.setdefault("mixed_precision_dtype", torch.bfloat16)
        super().__init__(pretrained=pretrained.model, tokenizer=tokenizer, batch_size=batch_size, **kwargs)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy requests through the pool, the rest (sampling, beams, …) through HFLM's batches of `generate`."""
        pooled = [i for i, r in enumerate(requests) if self._poolable(r.args[1])]
        if not pooled or not self.greedy_pool or self.batch_size == "auto" or not supports(self.prompted):
            return super().generate_until(requests, disable_tqdm)
        chosen = set(pooled)
        rest = [i for i in range(len(requests)) if i not in chosen]
        out: list[str | None] = [None] * len(requests)
        for i, text in zip(rest, super().generate_until([requests[i] for i in rest], disable_tqdm) if rest else []):
            out[i] = text
        for i, text in zip(pooled, self._pooled([requests[i].args for i in pooled])):
            out[i] = text
        return out

    def _poolable(self, gen_kwargs: dict) -> bool:
        if not isinstance(gen_kwargs, dict) or self.backend != "causal":
            return False
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        return set(kwargs) <= _GREEDY_KEYS and not kwargs.get("do_sample") and not kwargs.get("temperature")

    def _pooled(self, args: list[tuple[str, dict]]) -> list[str]:
        """HFLM's generate_until for greedy requests, item for item: the same context ids (its add-special-tokens and
        left-truncation rules), stop strings (+ EOS) and post-processing; decoding by the pool."""
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        bos = getattr(self.tokenizer, "bos_token", None)
        default = {} if self.add_bos_token is None else {"add_special_tokens": self.add_bos_token}
        with_bos = [has_bos_prefix(context, bos) for context, _ in args]
        encoded: list = [None] * len(args)
        for special, rows in (({"add_special_tokens": False}, [i for i, b in enumerate(with_bos) if b]),
                              (default, [i for i, b in enumerate(with_bos) if not b])):
            if rows:  # one tokenizer call per kind, not one per request
                for i, ids in zip(rows, self.tokenizer([args[i][0] for i in rows], **special)["input_ids"]):
                    encoded[i] = ids
        reqs, stops = [], []
        for (context, gen_kwargs), ids in zip(args, encoded):
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            reqs.append(Request(ids[-(self.max_length - kwargs["max_gen_toks"]):], kwargs["max_gen_toks"],
                                tuple(until)))
            stops.append(until)
        with torch.autocast(self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            new = GreedyPool(self.prompted, self.tokenizer, reqs, int(self.batch_size)).run()
        texts = []
        for (context, gen_kwargs), tokens, until in zip(args, new, stops):
            if isinstance(self.think_end_token, int) and self.think_end_token in tokens:
                tokens = tokens[len(tokens) - tokens[::-1].index(self.think_end_token):]
            text = self.tok_decode(tokens)
            if isinstance(self.think_end_token, int):
                text = text.lstrip()
            text = postprocess_generated_text(text, until, self.think_end_token
                                              if isinstance(self.think_end_token, str) else None)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            texts.append(text)
        return texts

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] → [B, T, V] (causal) or decoder logits [B, L, V] (seq2seq): prompt positions never appear."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            if labels is not None:  # seq2seq: HFLM passes the encoder mask and decoder labels
                return self.prompted(inps, attn_mask, labels=labels).logits
            return self.prompted(inps).logits

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs):
        """HFLM expects context + continuation back; PromptedLM returns only the continuation."""
        generation_kwargs["temperature"] = generation_kwargs.get("temperature", 0.0)
        if generation_kwargs["temperature"] == 0.0 and generation_kwargs.get("do_sample") is None:
            generation_kwargs["do_sample"] = False
        if generation_kwargs.get("do_sample") is False:
            generation_kwargs.pop("temperature", None)
        mask = generation_kwargs.pop("attention_mask", None)
        # With the prompt injected as embeddings, generate() sees no prompt ids: stop criteria start at 0.
        start = 0 if self.prompted.prompt is not None and not self.prompted.is_seq2seq else context.shape[1]
        if self.prompted.is_seq2seq:
            start = 1
        criteria = stop_sequences_criteria(self.tokenizer, stop, start, context.shape[0])
        with torch.autocast(self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            new = self.prompted.generate(
                context, mask, max_new_tokens=max_length - context.shape[1], stopping_criteria=criteria,
                pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **generation_kwargs,
            )
        if self.prompted.is_seq2seq:
            return new
        return torch.cat([context, new], dim=1)
