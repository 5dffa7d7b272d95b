"""Reading a LLaVA's choice between fixed answers from one forward pass: deterministic and cheap.

A question is rendered exactly as `ChatYoLLaVA` renders a user turn (the checkpoint's chat
template, the photo first, the active concepts' prompts right after it, or at the start of a
text-only turn). Each candidate answer ("Yes, bo is in this photo." / "No, ..."; "A" / "B") is
tokenised as the chat template continues the prompt with it, as training tokenises its answers.
The candidates' shared leading tokens (often a lone "▁") are appended to the prompt, and the model
picks the candidate whose first *distinguishing* token gets the higher logit at the next position.
For recognition that is the first answer token training learns ("Yes" against "No"), so the
reading matches the trainer's accuracy.

Queries run in batches, left-padded, with position ids from the attention mask, so a batch gives
the same choices as one query at a time; only the last position's logits are computed. Not done:
sampling or generating free text and parsing it (slow, and dependent on answer style), and
scoring whole answer sequences (the first distinguishing token is what the paper's yes/no reading
and the trainer's accuracy use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from yollava_agent.prompts import Turn, active_concept_prompt, with_concepts
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept
from yollava_agent.templates import answer_token_ids, prompt_and_answer


@dataclass(frozen=True)
class Query:
    """One question, with its photo or without, and photos shown before it (references)."""

    text: str
    image: Image.Image | None = None
    references: tuple[Image.Image, ...] = ()
    """Photos that come before the question's own photo (the `reference` method's)."""

    @property
    def images(self) -> list[Image.Image]:
        """Every photo of the turn, in order: the references, then the question's photo."""
        return [*self.references, *([self.image] if self.image is not None else [])]


def conversation(query: Query, concepts: Sequence[ActiveConcept]) -> list[Turn]:
    """The query as a one-turn conversation, with concept prompts where ChatYoLLaVA puts them."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in query.images]
    content.append({"type": "text", "text": query.text})
    return with_concepts([{"role": "user", "content": content}], concepts, 0)


def _continuation(runtime: LlavaRuntime, turns: list[Turn], answer: str) -> list[int]:
    prompt, text = prompt_and_answer(runtime.processor, turns, answer, runtime.model_id)
    return answer_token_ids(runtime.tokenizer, prompt, text, runtime.model_id)[1]


def distinguishing_tokens(
    runtime: LlavaRuntime, turns: list[Turn], candidates: Sequence[str]
) -> tuple[list[int], list[int]]:
    """(shared leading ids, the first differing id of each candidate) for answers after `turns`."""
    if len(candidates) < 2:
        msg = f"Choosing needs at least two candidate answers, got {list(candidates)}."
        raise ValueError(msg)
    continuations = [_continuation(runtime, turns, c) for c in candidates]
    shared = 0
    while (
        all(len(c) > shared for c in continuations) and len({c[shared] for c in continuations}) == 1
    ):
        shared += 1
    if any(len(c) <= shared for c in continuations):
        msg = (
            f"Candidate answers {list(candidates)} cannot be told apart by their first tokens: one "
            "is a prefix of another. Use answers that differ."
        )
        raise ValueError(msg)
    firsts = [c[shared] for c in continuations]
    if len(set(firsts)) != len(firsts):
        msg = (
            f"Candidate answers {list(candidates)} share their first distinguishing token; use "
            "answers that differ."
        )
        raise ValueError(msg)
    return continuations[0][:shared], firsts


def concept_prompt_tokens(runtime: LlavaRuntime, concepts: Sequence[ActiveConcept]) -> int:
    """How many tokens the concepts' prompts add to a turn (with their tokens injected)."""
    if not concepts:
        return 0
    runtime.set_concepts(a.concept for a in concepts if a.concept is not None)
    text = " ".join(active_concept_prompt(a) for a in concepts)
    return len(runtime.tokenizer(text, add_special_tokens=False)["input_ids"])


def _score_batch(
    runtime: LlavaRuntime,
    queries: Sequence[Query],
    concepts: Sequence[ActiveConcept],
    shared: list[int],
    firsts: list[int],
) -> torch.Tensor:
    processor, tokenizer = runtime.processor, runtime.tokenizer
    prompts = [
        processor.apply_chat_template(conversation(q, concepts), add_generation_prompt=True)
        for q in queries
    ]
    images = [image for q in queries for image in q.images]
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        inputs = processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = padding_side
    input_ids, attention = inputs["input_ids"], inputs["attention_mask"]
    if shared:
        extra = torch.tensor([shared] * len(queries), dtype=input_ids.dtype)
        input_ids = torch.cat([input_ids, extra], dim=1)
        attention = torch.cat([attention, torch.ones_like(extra, dtype=attention.dtype)], dim=1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    model_inputs = {
        "input_ids": input_ids.to(runtime.device),
        "attention_mask": attention.to(runtime.device),
        "position_ids": positions.to(runtime.device),
    }
    if images:
        model_inputs["pixel_values"] = inputs["pixel_values"].to(runtime.device, runtime.dtype)
        # LLaVA-NeXT and OneVision also need each photo's size (and OneVision photos per query).
        for key in ("image_sizes", "batch_num_images"):
            if key in inputs:
                model_inputs[key] = inputs[key].to(runtime.device)
    with torch.inference_mode():
        logits = runtime.model(**model_inputs, logits_to_keep=1).logits[:, -1, :]
    return logits[:, firsts].float().cpu()


def candidate_logits(
    runtime: LlavaRuntime,
    queries: Sequence[Query],
    concepts: Sequence[ActiveConcept],
    candidates: Sequence[str],
    batch_size: int = 8,
) -> torch.Tensor:
    """(len(queries), len(candidates)) logits of each candidate's first distinguishing token.

    The concepts' tokens are injected for the call (hold `runtime.lock` around it when the runtime
    is shared); each query gets their prompts.
    """
    if batch_size < 1:
        msg = f"batch_size must be a positive integer, got {batch_size!r}."
        raise ValueError(msg)
    scores = torch.zeros((len(queries), len(candidates)))
    if not queries:
        return scores
    runtime.set_concepts(a.concept for a in concepts if a.concept is not None)
    shared, firsts = distinguishing_tokens(runtime, conversation(queries[0], concepts), candidates)
    # Photos and text-only questions go in separate batches: the processor pairs images with
    # image tokens across the whole batch.
    for with_image in (True, False):
        indices = [i for i, q in enumerate(queries) if bool(q.images) == with_image]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            scores[chunk] = _score_batch(
                runtime, [queries[i] for i in chunk], concepts, shared, firsts
            )
    return scores


def choose(
    runtime: LlavaRuntime,
    queries: Sequence[Query],
    concepts: Sequence[ActiveConcept],
    candidates: Sequence[str],
    batch_size: int = 8,
) -> list[int]:
    """For each query, the index of the candidate answer the model prefers (ties: the first)."""
    scores = candidate_logits(runtime, queries, concepts, candidates, batch_size)
    return [int(row.argmax()) for row in scores]
