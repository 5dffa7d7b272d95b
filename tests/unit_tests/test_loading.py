"""Loading base models: the tiny model's round trip, defaults, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlavaNextVideoConfig

from yollava_agent import ModelLoadError, load_llava
from yollava_agent.loading import (
    CPU_DEFAULT_MODEL,
    GPU_DEFAULT_MODEL,
    default_model,
    resolve_dtype,
)
from yollava_agent.paths import data_home
from yollava_agent.tiny import tiny_model_dir


def test_tiny_model_is_a_saved_checkpoint_loaded_through_from_pretrained(runtime) -> None:
    folder = tiny_model_dir(data_home() / "models")
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "chat_template.jinja"} <= names
    assert type(runtime.model).__name__ == "LlavaForConditionalGeneration"
    assert runtime.processor.tokenizer.bos_token == "<s>"

    again = load_llava(str(folder), "cpu", "fp32")  # the same folder, as any local checkpoint
    inputs = runtime.processor(text="USER: Hello ASSISTANT:", return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(runtime.model(**inputs).logits, again.model(**inputs).logits)
    assert again.base.same_base(runtime.base)


def test_missing_model_error_names_model_cache_and_tiny() -> None:
    with pytest.raises(ModelLoadError) as info:
        load_llava("llava-hf/llava-1.5-7b-hf", "cpu")
    message = str(info.value)
    assert "'llava-hf/llava-1.5-7b-hf'" in message
    assert "huggingface" in message and "hub" in message  # the cache folder
    assert "model='tiny'" in message
    assert "Traceback" not in message


def test_missing_local_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"'.*no-model-here'"):
        load_llava(str(tmp_path / "no-model-here"), "cpu")


SUPPORTED = (
    "Supported model classes: LlavaForConditionalGeneration (llava-1.5, llava-interleave); "
    "LlavaNextForConditionalGeneration (LLaVA-NeXT); "
    "LlavaOnevisionForConditionalGeneration (LLaVA-OneVision)."
)


def test_a_checkpoint_that_is_not_llava_is_refused(tmp_path: Path) -> None:
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(ModelLoadError) as info:
        load_llava(str(tmp_path / "llama"), "cpu")
    message = str(info.value)
    assert "is a LlamaForCausalLM checkpoint, which yollava-agent does not support" in message
    assert SUPPORTED in message


def test_another_llava_class_is_refused_by_its_class_not_its_name(tmp_path: Path) -> None:
    # LLaVA-NeXT-Video is a LLaVA by name, and a class concepts are not proven on.
    LlavaNextVideoConfig().save_pretrained(tmp_path / "video")
    with pytest.raises(ModelLoadError) as info:
        load_llava(str(tmp_path / "video"), "cpu")
    message = str(info.value)
    found = "is a LlavaNextVideoForConditionalGeneration checkpoint"
    assert f"Model '{tmp_path / 'video'}' {found}" in message
    assert SUPPORTED in message


def test_defaults_follow_the_device() -> None:
    assert default_model(torch.device("cuda")) == GPU_DEFAULT_MODEL == "llava-hf/llava-1.5-7b-hf"
    assert default_model(torch.device("cpu")) == CPU_DEFAULT_MODEL
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_unknown_dtype_and_device_are_named() -> None:
    with pytest.raises(ValueError, match=r"Unknown dtype 'float8'"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ValueError, match=r"Unknown device 'gpu0'"):
        load_llava("tiny", "gpu0")
