"""Answers as a checkpoint's chat template writes them: the text and token ids after a prompt.

Training learns answers, and the evaluation reads choices between answers, as the tokens the model
generates after the prompt `apply_chat_template(turns, add_generation_prompt=True)`. The answer is
what the template renders after that prompt when the turns are followed by an assistant turn:
`" Yes. "` for llava-1.5 (`ASSISTANT:` then the answer), `" Yes.</s> "` for LLaVA-NeXT's Mistral
template, `"Yes.<|im_end|>\\n"` for the ChatML ones. Trailing whitespace is dropped: generation
ends at the end-of-sequence token, never after it.

One template quirk is undone: llava-interleave's renders an assistant turn as `"\\n" + text` after a
generation prompt that already ends with `"\\n"`, while its model answers right after that prompt
(LLaVA-NeXT's Qwen conversation format). Training on the doubled newline would teach the concept
tokens to make the model open every answer with a blank line, so the second newline is dropped.

Prompt and answer are tokenised together, and the prompt's ids must come out as a prefix, so the
answer ids are exactly what generation continues the prompt with. Not here: where concept prompts
go in the turns (`prompts.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from yollava_agent.prompts import Turn


def prompt_and_answer(
    processor: Any, turns: Sequence[Turn], answer: str, model_id: str
) -> tuple[str, str]:
    """The rendered prompt (ending with the generation prompt) and the answer text after it."""
    prompt = processor.apply_chat_template(list(turns), add_generation_prompt=True)
    assistant = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    full = processor.apply_chat_template([*turns, assistant])
    if not full.startswith(prompt) or not full[len(prompt) :].strip():
        msg = (
            f"The chat template of {model_id!r} does not render the answer {answer!r} after "
            f"the prompt {prompt[-60:]!r}: it cannot be used to train or score answers."
        )
        raise ValueError(msg)
    continuation = full[len(prompt) :]
    if prompt.endswith("\n") and continuation.startswith("\n"):
        continuation = continuation[1:]
    return prompt, continuation.rstrip()


def answer_token_ids(
    tokenizer: Any, prompt: str, answer: str, model_id: str
) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids): the answer's ids as they continue the prompt's."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    full_ids = tokenizer(prompt + answer)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) == len(prompt_ids):
        msg = (
            f"With the tokenizer of {model_id!r}, the answer {answer!r} does not tokenise as a "
            f"continuation of its prompt {prompt[-60:]!r}: the tokens merge across the boundary."
        )
        raise ValueError(msg)
    return prompt_ids, full_ids[len(prompt_ids) :]
