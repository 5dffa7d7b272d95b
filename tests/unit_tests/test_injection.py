"""Injecting concepts into a loaded model: idempotent, several at once, removable, base untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import make_concept
from yollava_agent import ConceptConflictError, InvalidConceptNameError, LlavaRuntime
from yollava_agent.runtime import LlavaRuntime as RuntimeClass


def _weights(runtime: LlavaRuntime) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        runtime.model.get_input_embeddings().weight.detach().clone(),
        runtime.model.get_output_embeddings().weight.detach().clone(),
    )


def test_inject_adds_tokens_and_rows(runtime) -> None:
    base_tokens = len(runtime.tokenizer)
    bo = make_concept(runtime, "bo", seed=1)
    runtime.inject(bo)

    assert len(runtime.tokenizer) == base_tokens + 17
    ids = runtime.token_ids("bo")
    assert runtime.tokenizer.convert_ids_to_tokens(ids) == bo.tokens
    inputs, outputs = _weights(runtime)
    assert inputs.shape[0] == base_tokens + 17
    assert torch.equal(inputs[ids], bo.input_embeddings)
    assert torch.equal(outputs[ids], bo.output_embeddings)


def test_inject_is_idempotent(runtime) -> None:
    bo = make_concept(runtime, "bo", seed=1)
    runtime.inject(bo)
    once = _weights(runtime), len(runtime.tokenizer), runtime.token_ids("bo")
    runtime.inject(bo)
    runtime.set_concepts([bo])
    twice = _weights(runtime), len(runtime.tokenizer), runtime.token_ids("bo")
    assert torch.equal(once[0][0], twice[0][0]) and torch.equal(once[0][1], twice[0][1])
    assert once[1:] == twice[1:]


def test_several_concepts_and_removal_leave_base_rows_bit_identical(runtime) -> None:
    base_in, base_out = _weights(runtime)
    base_tokens = len(runtime.tokenizer)
    bo, mug = make_concept(runtime, "bo", seed=1), make_concept(runtime, "mug", seed=2)

    runtime.inject(bo, mug)
    assert list(runtime.injected) == ["bo", "mug"]
    inputs, outputs = _weights(runtime)
    assert torch.equal(inputs[: base_in.shape[0]], base_in)
    assert torch.equal(outputs[: base_out.shape[0]], base_out)
    assert torch.equal(inputs[runtime.token_ids("mug")], mug.input_embeddings)

    runtime.remove("bo")
    assert list(runtime.injected) == ["mug"]
    assert "<bo>" not in runtime.tokenizer.get_vocab()
    inputs, _ = _weights(runtime)
    assert torch.equal(inputs[runtime.token_ids("mug")], mug.input_embeddings)

    runtime.remove("mug")
    inputs, outputs = _weights(runtime)
    assert torch.equal(inputs, base_in) and torch.equal(outputs, base_out)
    assert len(runtime.tokenizer) == base_tokens


def test_padded_vocabulary_rows_are_restored_on_removal(runtime) -> None:
    # llava-1.5 has 32064 rows for 32002 tokens: new tokens land in that padding.
    model, processor = runtime.model, copy.deepcopy(runtime.processor)
    padded = type(model)(model.config)
    padded.load_state_dict(model.state_dict())
    padded.resize_token_embeddings(len(runtime.tokenizer) + 8, mean_resizing=False)
    padded_runtime = RuntimeClass(padded, processor, "tiny-padded")
    base_in = padded.get_input_embeddings().weight.detach().clone()
    base_out = padded.get_output_embeddings().weight.detach().clone()

    bo = make_concept(padded_runtime, "bo", seed=1)
    padded_runtime.inject(bo)
    assert padded.get_input_embeddings().weight.shape[0] == base_in.shape[0] + 9
    assert torch.equal(
        padded.get_input_embeddings().weight[padded_runtime.token_ids("bo")], bo.input_embeddings
    )
    padded_runtime.remove("bo")
    assert torch.equal(padded.get_input_embeddings().weight, base_in)
    assert torch.equal(padded.get_output_embeddings().weight, base_out)


def test_a_token_of_the_base_vocabulary_is_refused(runtime) -> None:
    with pytest.raises(ConceptConflictError, match=r"its vocabulary already has the token '<image>'"):
        runtime.inject(make_concept(runtime, "image"))
    assert runtime.injected == {}


def test_no_concept_can_be_named_like_another_concepts_latent_token(runtime) -> None:
    with pytest.raises(InvalidConceptNameError, match=r"'bo_1' ends in '_' and digits"):
        make_concept(runtime, "bo_1")
