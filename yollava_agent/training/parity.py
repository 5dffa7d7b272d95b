"""Checks that training optimises what inference serves, on whatever base is loaded.

Two measurements, used by the tests of every supported family and by
`benchmarks/family_parity.py`:

- `serving_error`: one training sample as the trainer computes it (its token ids, the concept rows
  spliced in by the trainer's hooks, the full-sequence forward) against the chat model's own
  forward pass on the same turn with the concept injected (`ChatYoLLaVA`'s prompt building, the
  processor's image expansion, the rows written into the embedding and head matrices). The token
  ids must be the same and the logits over the prompt equal up to float rounding: every logit
  includes the concept's output rows, every position after the concept prompt its input rows.
- `fast_path_error`: one batch through the cached-prefix step (`fast.py`) against the
  full-sequence reference step: loss, and the gradients of the concept's input and output rows.

Both leave the runtime with the concepts it had. Not here: the training loop (`trainer.py`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from langchain_core.messages import HumanMessage

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import Concept
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.training.data import Sample
from yollava_agent.training.fast import FastPath
from yollava_agent.training.trainer import (
    _ConceptRows,
    _Encoder,
    _full_sequence_step,
    full_sequence_logits,
)


@dataclass(frozen=True)
class ServingCheck:
    """The trainer's view of one sample against the chat model's."""

    same_token_ids: bool
    """The chat model's prompt ids are the trainer's prompt ids."""
    logit_error: float
    """Relative error of the prompt positions' logits, |trainer - chat| / |chat| (inf when the ids
    differ)."""


@dataclass(frozen=True)
class FastPathCheck:
    """Relative errors of the fast step against the full-sequence step on one batch."""

    loss: float
    input_gradient: float
    output_gradient: float


def _relative(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).norm() / reference.norm())


def _image_block(image: object) -> dict[str, str]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]  # lossless: the same pixels
    payload = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image", "base64": payload, "mime_type": "image/png"}


def _pad_id(runtime: LlavaRuntime) -> int:
    tokenizer: Any = runtime.tokenizer
    return tokenizer.pad_token_id or tokenizer.eos_token_id


def serving_error(runtime: LlavaRuntime, concept: Concept, sample: Sample) -> ServingCheck:
    """Compare the trainer's logits for `sample` with the chat model's for the same question."""
    with runtime.lock:
        previous = list(runtime.injected.values())
        try:
            runtime.set_concepts([concept])
            encoder = _Encoder(runtime, concept.name, concept.num_latent_tokens)
            item = encoder.encode(sample)
            rows = _ConceptRows(concept, runtime.token_ids(concept.name)[0]).to(runtime.device)
            pad_id = _pad_id(runtime)
            with rows.spliced(runtime), torch.no_grad():
                trained, _ = full_sequence_logits(runtime, encoder, [item], [False], pad_id)
            content: list[object] = [] if sample.image is None else [_image_block(sample.image)]
            chat = ChatYoLLaVA(model=runtime.model_id, concepts=[concept])
            message = HumanMessage(content=[*content, {"type": "text", "text": sample.question}])
            turn = chat._prepare(runtime, [message], None, {})
            with torch.no_grad():
                served = runtime.model(**turn.inputs).logits.float()
        finally:
            runtime.set_concepts(previous)
    same = turn.inputs["input_ids"][0].tolist() == item.input_ids[: item.answer_start]
    error = _relative(trained[0, : item.answer_start], served[0]) if same else float("inf")
    return ServingCheck(same_token_ids=same, logit_error=error)


def fast_path_error(
    runtime: LlavaRuntime, concept: Concept, samples: Sequence[Sample], flips: Sequence[bool]
) -> FastPathCheck:
    """Run `samples` (with these flips) as one batch through both steps and compare them."""
    with runtime.lock:
        previous = list(runtime.injected.values())
        try:
            runtime.set_concepts([concept])
            encoder = _Encoder(runtime, concept.name, concept.num_latent_tokens)
            encoded = [encoder.encode(sample) for sample in samples]
            rows = _ConceptRows(concept, runtime.token_ids(concept.name)[0]).to(runtime.device)
            fast = FastPath(runtime, encoder, encoded, rows.first_id, rows.count)
            results = []
            for step in (
                lambda: _full_sequence_step(runtime, encoder, encoded, flips, _pad_id(runtime)),
                lambda: fast(encoded, flips),
            ):
                rows.zero_grad(set_to_none=True)
                with rows.spliced(runtime):
                    loss = step()[0]
                    loss.backward()
                output_grad = rows.output_rows.grad
                results.append((loss.detach(), rows.input_rows.grad.clone(), output_grad.clone()))
        finally:
            runtime.set_concepts(previous)
    (ref_loss, ref_in, ref_out), (loss, grad_in, grad_out) = results
    return FastPathCheck(
        loss=abs(float(loss - ref_loss)) / abs(float(ref_loss)),
        input_gradient=_relative(grad_in, ref_in),
        output_gradient=_relative(grad_out, ref_out),
    )
