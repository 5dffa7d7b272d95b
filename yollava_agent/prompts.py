"""Prompts: the Yo'LLaVA concept prompt, where it goes in a conversation, and answers shown back.

The concept prompt is `"<bo> is <bo_1><bo_2>...<bo_16>."`. As in the public Yo'LLaVA code, it
goes into the user turn right after the image, and at the start of the user turn for text-only
turns; several active concepts give several prompts, one after another. We put it in the latest
user turn (the one being answered): that is the position training uses, and earlier turns stay as
they were. A concept that has no trained tokens yet is described in words instead, and remembered
facts follow as plain sentences.

The conversation is rendered with the processor's chat template, so each checkpoint gets its own
format. Not here: how messages are turned into turns (the chat model) and tool prompts
(`tool_calling.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from yollava_agent.concept import identifier_token, latent_tokens
from yollava_agent.sources import ActiveConcept

Turn = dict[str, Any]
"""One chat-template message: {"role": ..., "content": [{"type": "image"} | {"type": "text", ...}]}."""


def concept_prompt(name: str, num_latent_tokens: int) -> str:
    """The Yo'LLaVA concept prompt: `<bo> is <bo_1>...<bo_k>.`"""
    return f"{identifier_token(name)} is {''.join(latent_tokens(name, num_latent_tokens))}."


def active_concept_prompt(active: ActiveConcept) -> str:
    """What one active concept adds to the user turn: tokens when trained, else words; then facts."""
    if active.concept is not None:
        parts = [concept_prompt(active.name, active.concept.num_latent_tokens)]
        subject = identifier_token(active.name)
    else:
        description = active.description.strip().rstrip(".")
        parts = [f"{active.name} is {description}." if description else f"{active.name} is known to the user."]
        subject = active.name
    if active.facts:
        facts = "; ".join(fact.strip().rstrip(".") for fact in active.facts)
        parts.append(f"Facts about {subject}: {facts}.")
    return " ".join(parts)


def insert_prompt_text(turn: Turn, text: str) -> Turn:
    """A copy of a user turn with `text` after its images (or at its start).

    The text joins the turn's next text block, separated by a space, rather than making a block of
    its own: templates join text blocks differently (llava-1.5 and llava-interleave put a space or
    a newline between them, LLaVA-NeXT's Mistral and OneVision's templates nothing at all), and
    one block reads `<bo> is ... . Is <bo> here?` in every one of them.
    """
    content = list(turn["content"])
    after_images = max((i + 1 for i, b in enumerate(content) if b.get("type") == "image"), default=0)
    following = content[after_images] if after_images < len(content) else None
    if following is not None and following.get("type") == "text":
        joined = {**following, "text": f"{text} {following['text']}"}
        content[after_images : after_images + 1] = [joined]
    else:
        content.insert(after_images, {"type": "text", "text": text})
    return {**turn, "content": content}


def insert_concept_prompts(turn: Turn, concepts: Sequence[ActiveConcept]) -> Turn:
    """A copy of a user turn with the concepts' prompts after its images (or at its start)."""
    return insert_prompt_text(turn, " ".join(active_concept_prompt(c) for c in concepts))


def with_concepts(
    conversation: Sequence[Turn], concepts: Sequence[ActiveConcept], user_turn: int | None
) -> list[Turn]:
    """The conversation with concept prompts in turn `user_turn` (the latest human message).

    With no human message (`user_turn` None) the prompts get a user turn of their own at the end.
    """
    turns = list(conversation)
    if not concepts:
        return turns
    if user_turn is None:
        turns.append(insert_concept_prompts({"role": "user", "content": []}, concepts))
    else:
        turns[user_turn] = insert_concept_prompts(turns[user_turn], concepts)
    return turns


def render_answer(text: str, names: Sequence[str]) -> str:
    """Show an answer to people: `<bo>` becomes `bo`, latent tokens disappear."""
    for name in names:
        text = re.sub(rf"<{re.escape(name)}_\d+>", "", text)
        text = text.replace(identifier_token(name), name)
    return text
