"""`ConceptMemoryMiddleware`: the user's visual concept memory in any `create_agent` agent.

LangChain 1.x agent middleware (`langchain.agents.middleware.AgentMiddleware`) over a
`ConceptStore`, for agents on any chat model (ChatOpenAI, ChatAnthropic, ChatOllama, ...). On each
model call (`wrap_model_call`) it looks at the latest human turn: the concepts it names (as
`StoreConceptSource.named_in` finds them) and those the instant tier recognises in its photos
(image blocks with base64 data, a data URL or a local path, read by `yollava_agent.images`). When
there are any, the request gets one short note at the end of its system message, one line per
concept ("The photo shows bo, one of the user's own subjects: a red ceramic mug. Known facts:
..."); when there are none, the request goes on unchanged. With `ChatYoLLaVA` as the agent's
model there is no note: the concepts are handed to the model instead (a copy of it per call), so
trained concepts come as their own tokens and untrained ones in the model's own words for them.
The six concept tools are registered with the agent (`context_concept_tools`), each call acting
for the user of the run.

The user is the one of the agent's runtime context (`context.py`), never of the model's output or
a tool argument; a model call without one raises `MissingUserError` before the model runs.

Chosen not to do: fetching remote photo URLs (the image loader refuses them; such a photo, like
an unreadable one, is skipped with a warning and the call goes on, so a memory add-on never
breaks a turn the model itself could answer); writing the note into the conversation's state
(it is rebuilt on every call from what the store knows then, so a forgotten concept or a new fact
shows at the next call); caching recognitions between the model calls of one turn; escaping what
users wrote into descriptions and facts (it is their own memory, shown to their own agent).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables.config import run_in_executor
from PIL import Image

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.errors import ImageInputError, UnknownConceptError
from yollava_agent.images import image_from_block, is_image_block
from yollava_agent.memory.source import StoreConceptSource
from yollava_agent.memory.store import ConceptStore
from yollava_agent.sources import ActiveConcept
from yollava_agent.tools.concept_tools import context_concept_tools
from yollava_agent.tools.context import user_id_from_context
from yollava_agent.tools.queue import TrainingQueue

logger = logging.getLogger(__name__)

__all__ = ["ConceptMemoryMiddleware"]


class ConceptMemoryMiddleware(AgentMiddleware):
    """Brings what concept memory knows of the subjects of a turn into the agent's model call.

    Setup:
        ```python
        from langchain.agents import create_agent
        from yollava_agent.memory import ConceptStore
        from yollava_agent.tools import ConceptMemoryContext, ConceptMemoryMiddleware

        memory = ConceptMemoryMiddleware(ConceptStore())
        agent = create_agent(model, tools, middleware=[memory], context_schema=ConceptMemoryContext)
        agent.invoke({"messages": [...]}, context=ConceptMemoryContext(user_id="alice"))
        ```
    """

    def __init__(
        self,
        store: ConceptStore,
        queue: TrainingQueue | None = None,
        *,
        photo_dirs: Sequence[str | Path] | None = None,
        max_facts: int = 10,
    ) -> None:
        """Memory over `store`; `queue` trains taught concepts (None: instant tier only).

        `photo_dirs`, when given, are the only folders the tools read photos from. `max_facts` is
        the most facts given per concept, the newest.
        """
        if max_facts < 0:
            msg = f"max_facts must be 0 or more, got {max_facts!r}."
            raise ValueError(msg)
        self.store = store
        self.queue = queue
        self.max_facts = max_facts
        self.tools = context_concept_tools(store, queue, photo_dirs=photo_dirs)

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelCallResult:
        return handler(self.with_memory(request))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelCallResult:
        # The store and CLIP block: keep them off the event loop.
        return await handler(await run_in_executor(None, self.with_memory, request))

    def with_memory(self, request: ModelRequest) -> ModelRequest:
        """The request with the concepts of its latest human turn; itself when there are none."""
        runtime = request.runtime
        user_id = user_id_from_context(None if runtime is None else runtime.context)
        turn = _latest_human_turn(request.messages)
        if turn is None:
            return request
        text, photos = _read_turn(turn)
        for_yollava = isinstance(request.model, ChatYoLLaVA)
        source = StoreConceptSource(self.store, user_id, tokens=for_yollava)
        shown: dict[str, list[int]] = {}
        for number, photo in enumerate(photos, start=1):
            if photo is not None:
                for hit in self.store.recognize(user_id, photo):
                    shown.setdefault(hit.name, []).append(number)
        names = dict.fromkeys([*shown, *source.named_in(text)])
        concepts = [c for c in (self._concept(source, name) for name in names) if c is not None]
        if not concepts:
            return request
        logger.debug("Concept memory for this call: %s", [c.name for c in concepts])
        if for_yollava:
            return request.override(model=_with_concepts(request.model, concepts))
        note = _note(concepts, shown, len(photos))
        return request.override(system_message=_with_note(request.system_message, note))

    def _concept(self, source: StoreConceptSource, name: str) -> ActiveConcept | None:
        try:
            concept = source.get_concept(name)
        except UnknownConceptError:
            return None  # forgotten since it was found: nothing to tell
        kept = concept.facts[max(len(concept.facts) - self.max_facts, 0) :]
        return dataclasses.replace(concept, facts=kept)


def _latest_human_turn(messages: Sequence[AnyMessage]) -> HumanMessage | None:
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def _read_turn(turn: HumanMessage) -> tuple[str, list[Image.Image | None]]:
    """The text of a human turn, and its photos in order (None for one that cannot be read)."""
    blocks: list[Any] = [turn.content] if isinstance(turn.content, str) else list(turn.content)
    texts: list[str] = []
    photos: list[Image.Image | None] = []
    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif is_image_block(block):
            try:
                photos.append(image_from_block(block))
            except ImageInputError as e:
                logger.warning("Concept memory did not look at photo %d: %s", len(photos) + 1, e)
                photos.append(None)
    return " ".join(texts), photos


def _with_concepts(model: ChatYoLLaVA, concepts: Sequence[ActiveConcept]) -> ChatYoLLaVA:
    """A copy of the model with these concepts active too (its configured ones come first)."""
    configured = {c.name for c in model.concepts}
    added = [c for c in concepts if c.name not in configured]
    return model.model_copy(update={"concepts": [*model.concepts, *added]})


def _with_note(system: SystemMessage | None, note: str) -> SystemMessage:
    """The system message with the note at its end (a message of its own when there is none)."""
    if system is None:
        return SystemMessage(note)
    if isinstance(system.content, str):
        content: str | list[Any] = f"{system.content}\n\n{note}" if system.content else note
    else:
        content = [*system.content, {"type": "text", "text": note}]
    return system.model_copy(update={"content": content})


def _note(
    concepts: Sequence[ActiveConcept], shown: Mapping[str, Sequence[int]], photo_count: int
) -> str:
    """One line per concept: where it is (photo or mention), its description, its facts."""
    return "\n".join(_line(c, shown.get(c.name, ()), photo_count) for c in concepts)


def _line(concept: ActiveConcept, photos: Sequence[int], photo_count: int) -> str:
    name = concept.name
    if not photos:
        opening = f"The user mentions {name}, one of their own subjects"
    elif photo_count == 1:
        opening = f"The photo shows {name}, one of the user's own subjects"
    else:
        numbers = [str(n) for n in photos]
        listed = numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"
        verb = "Photo {} shows" if len(numbers) == 1 else "Photos {} show"
        opening = f"{verb.format(listed)} {name}, one of the user's own subjects"
    description = " ".join(concept.description.split())
    if description and description[-1] not in ".!?":
        description += "."
    line = f"{opening}: {description}" if description else f"{opening}."
    facts = [" ".join(fact.split()).rstrip(".") for fact in concept.facts]
    if facts:
        line += f" Known facts: {'; '.join(facts)}."
    return line
