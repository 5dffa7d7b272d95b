"""Loading a base LLaVA: a checkpoint of a supported family, or one of the offline tiny ones.

`load_llava` goes through the Auto classes (`AutoConfig`, `AutoModelForImageTextToText`,
`AutoProcessor`) for a hub id or a local folder, so the checkpoint's own config decides the model
class; a class outside `SUPPORTED_MODEL_CLASSES` is refused before any weights load, naming the
class found and the supported ones. Hub client tracebacks become one `ModelLoadError` that names
the model, the cache folder and the offline `tiny` option. `shared_runtime` keeps one runtime
per (model, device, dtype) so that chat models built with the same settings share the weights.

Defaults: `llava-hf/llava-1.5-7b-hf` in bf16 with a GPU, `llava-hf/llava-interleave-qwen-0.5b-hf`
in fp32 without. Not done here: quantisation and multi-GPU sharding (pass a loaded model instead).
"""

from __future__ import annotations

import logging
import threading

import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaForConditionalGeneration,
    LlavaNextForConditionalGeneration,
    LlavaOnevisionForConditionalGeneration,
    PretrainedConfig,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache

from yollava_agent.errors import ModelLoadError
from yollava_agent.paths import data_home
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.tiny import TINY_BUILDS, TINY_MODEL_NAME, build_tiny_llava, tiny_model_dir

logger = logging.getLogger(__name__)

GPU_DEFAULT_MODEL = "llava-hf/llava-1.5-7b-hf"
CPU_DEFAULT_MODEL = "llava-hf/llava-interleave-qwen-0.5b-hf"

SUPPORTED_MODEL_CLASSES: dict[type, str] = {
    LlavaForConditionalGeneration: "llava-1.5, llava-interleave",
    LlavaNextForConditionalGeneration: "LLaVA-NeXT",
    LlavaOnevisionForConditionalGeneration: "LLaVA-OneVision",
}
"""The model classes concepts work on, with the families that use them."""

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device`, or the first GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        msg = f"Unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'."
        raise ValueError(msg) from e


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`dtype` (a torch dtype or a name like 'bf16'), or bf16 on a GPU and fp32 on the CPU."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    msg = f"Unknown dtype {dtype!r}: use one of {sorted(_DTYPES)}."
    raise ValueError(msg)


def default_model(device: torch.device) -> str:
    """The checkpoint used when none is named: a 7B LLaVA on a GPU, a 0.5B one on the CPU."""
    return GPU_DEFAULT_MODEL if device.type == "cuda" else CPU_DEFAULT_MODEL


def _resolve(
    model: str | None, device: str | torch.device | None, dtype: str | torch.dtype | None
) -> tuple[str, torch.device, torch.dtype]:
    resolved_device = resolve_device(device)
    return model or default_model(resolved_device), resolved_device, resolve_dtype(dtype, resolved_device)


def _load_error(model: str, cause: Exception) -> ModelLoadError:
    reason = str(cause).strip().splitlines()[0].rstrip(".") if str(cause).strip() else ""
    msg = (
        f"Could not load the LLaVA model {model!r} ({type(cause).__name__}: {reason}). It is "
        "neither a local folder with a checkpoint nor in the Hugging Face cache at "
        f"{hf_constants.HF_HUB_CACHE}. Download it "
        f"once where there is network (`hf download {model}`), or point `model` at a local "
        f"folder, or use model='{TINY_MODEL_NAME}' for the offline test model (its answers are "
        "meaningless)."
    )
    return ModelLoadError(msg)


def check_supported(model_id: str, config: PretrainedConfig) -> None:
    """Raise `ModelLoadError` unless the checkpoint's model class is a supported one."""
    model_class = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING.get(type(config), None)
    if model_class in SUPPORTED_MODEL_CLASSES:
        return
    architectures = getattr(config, "architectures", None) or [f"{config.model_type!r} model"]
    found = model_class.__name__ if model_class is not None else architectures[0]
    supported = "; ".join(f"{c.__name__} ({names})" for c, names in SUPPORTED_MODEL_CLASSES.items())
    msg = (
        f"Model {model_id!r} is a {found} checkpoint, which yollava-agent does not support. "
        f"Supported model classes: {supported}."
    )
    raise ModelLoadError(msg)


def load_llava(
    model: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LlavaRuntime:
    """Load a LLaVA checkpoint (hub id, local folder, or a tiny one by name) with its processor."""
    model_id, resolved_device, resolved_dtype = _resolve(model, device, dtype)
    source = model_id
    if model_id in TINY_BUILDS:
        folder = tiny_model_dir(data_home() / "models", model_id)
        source = str(build_tiny_llava(folder, name=model_id))
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise _load_error(model_id, e) from e
    check_supported(model_id, config)
    try:
        processor = AutoProcessor.from_pretrained(source)
        llava = AutoModelForImageTextToText.from_pretrained(source, dtype=resolved_dtype)
    except (OSError, ValueError) as e:
        raise _load_error(model_id, e) from e
    llava.to(resolved_device).eval()
    llava.requires_grad_(False)
    kind = type(llava).__name__
    logger.info("Loaded %s (%s) on %s in %s", model_id, kind, resolved_device, resolved_dtype)
    return LlavaRuntime(llava, processor, model_id)


_shared: dict[tuple[str, str, str], LlavaRuntime] = {}
_shared_lock = threading.Lock()


def shared_runtime(
    model: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LlavaRuntime:
    """The one runtime for these settings in this process, loaded on first use."""
    model_id, resolved_device, resolved_dtype = _resolve(model, device, dtype)
    key = (model_id, str(resolved_device), str(resolved_dtype))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = load_llava(model_id, resolved_device, resolved_dtype)
        return _shared[key]


TINY_NOTICE = (
    "Running on the offline tiny model: its weights are random, so its answers are meaningless. "
    "For real answers download a LLaVA checkpoint once where there is network (`hf download "
    f"{GPU_DEFAULT_MODEL}`, or {CPU_DEFAULT_MODEL} for a CPU) and start again, or pass a local "
    "checkpoint folder as the model."
)


def in_hub_cache(repo_id: str, filename: str = "config.json") -> bool:
    """True when `filename` of the hub repository is in the local Hugging Face cache."""
    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def runtime_or_tiny(
    model: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> tuple[LlavaRuntime, str]:
    """The shared runtime for `model`, or, when no model was named and the default is not in the
    Hugging Face cache (nothing is downloaded unasked), the tiny one; with a notice for people
    ("" for a real model).

    A model named explicitly that cannot be loaded raises its `ModelLoadError`.
    """
    notice = ""
    fallback = model is None and not in_hub_cache(default_model(resolve_device(device)))
    try:
        if fallback:
            missing = default_model(resolve_device(device))
            msg = f"The default model {missing!r} is not in the Hugging Face cache ({hf_constants.HF_HUB_CACHE})"
            raise ModelLoadError(msg)
        runtime = shared_runtime(model, device, dtype)
    except ModelLoadError as e:
        if model is not None:
            raise
        logger.warning("Falling back to the tiny model: %s", e)
        notice = f"Could not load the default model: {e}. "
        runtime = shared_runtime(TINY_MODEL_NAME, device, dtype)
    if runtime.model_id in TINY_BUILDS:
        notice += TINY_NOTICE
    return runtime, notice
