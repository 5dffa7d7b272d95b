"""Prompts: the Yo'LLaVA concept prompt, where it goes in a conversation, and answers shown back.

The concept prompt is `"<bo> is <bo_1><bo_2>...<bo_16>."`. As in the public Yo'LLaVA code, it
goes into the user turn right after the image, and at the start of the user turn for text-only
turns; several active concepts give several prompts, one after another. We put it in the latest
user turn (the one being answered): that is the position training uses, and earlier turns stay as
they were. A concept that has no trained tokens yet is described in words instead, and remembered
facts follow as plain sentences.

The conversation is rendered with the processor's chat template, so each checkpoint gets its own
format. Text that comes from people (messages, descriptions, facts) never becomes one of the
template's special tokens: `escape_special_tokens` breaks up every added or special token of the
tokenizer it contains (`<image>`, `</s>`, `<|im_end|>`, latent tokens) with an invisible word
joiner, so it is read as plain text; only active concepts' identifiers (`<bo>`) stay, being names.
A concept's facts enter the prompt newest first up to `MAX_FACT_PROMPT_CHARS`, and the prompt says
how many older ones were left out. Not here: how messages are turned into turns (the chat model)
and tool prompts (`tool_calling.py`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from yollava_agent.concept import identifier_token, latent_tokens
from yollava_agent.sources import ActiveConcept

Turn = dict[str, Any]
"""One chat-template message: {"role": ..., "content": [{"type": "image"} | {"type": "text", ...}]}."""

MAX_FACT_PROMPT_CHARS = 1500
"""Most characters of a concept's facts that go into one prompt (the newest facts first)."""
WORD_JOINER = "\u2060"
"""Invisible, and not part of any token: put inside a special token's text, it stops being one."""


def escape_special_tokens(text: str, special_tokens: Collection[str], keep: Collection[str] = ()) -> str:
    """`text` with every token of `special_tokens` in it (but those in `keep`) made plain text."""
    escaped = sorted((t for t in special_tokens if len(t) > 1 and t not in keep), key=len, reverse=True)
    if not escaped or not any(t in text for t in escaped):
        return text
    pattern = "|".join(re.escape(t) for t in escaped)
    return re.sub(pattern, lambda m: m[0][0] + WORD_JOINER + m[0][1:], text)


def concept_prompt(name: str, num_latent_tokens: int) -> str:
    """The Yo'LLaVA concept prompt: `<bo> is <bo_1>...<bo_k>.`; with no latent tokens (the
    paper's k=0 ablation) there is none: only the identifier, wherever the question names it."""
    if num_latent_tokens == 0:
        return ""
    return f"{identifier_token(name)} is {''.join(latent_tokens(name, num_latent_tokens))}."


def active_concept_prompt(active: ActiveConcept) -> str:
    """What one active concept adds to the user turn: tokens when trained, else words; then facts."""
    if active.concept is not None:
        prompt = concept_prompt(active.name, active.concept.num_latent_tokens)
        parts = [prompt] if prompt else []
        subject = identifier_token(active.name)
    else:
        description = active.description.strip().rstrip(".")
        parts = [f"{active.name} is {description}." if description else f"{active.name} is known to the user."]
        subject = active.name
    shown, budget = [], MAX_FACT_PROMPT_CHARS
    for fact in reversed(active.facts):
        fact = fact.strip().rstrip(".")
        if len(fact) > budget:
            break
        shown.insert(0, fact)
        budget -= len(fact) + 2
    if shown:
        parts.append(f"Facts about {subject}: {'; '.join(shown)}.")
    if len(shown) < len(active.facts):
        parts.append(f"({len(active.facts) - len(shown)} older facts not shown.)")
    return " ".join(parts)


def insert_prompt_text(turn: Turn, text: str) -> Turn:
    """A copy of a user turn with `text` after its images (or at its start).

    The text joins the turn's next text block, separated by a space, rather than making a block of
    its own: templates join text blocks differently (llava-1.5 and llava-interleave put a space or
    a newline between them, LLaVA-NeXT's Mistral and OneVision's templates nothing at all), and
    one block reads `<bo> is ... . Is <bo> here?` in every one of them.
    """
    if not text:
        return dict(turn)
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
    prompts = [active_concept_prompt(c) for c in concepts]
    return insert_prompt_text(turn, " ".join(p for p in prompts if p))


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
