"""Visual memory for an agent on any chat model: `ConceptMemoryMiddleware`, offline on a fake model.

An existing `create_agent` agent gets the user's concept memory by adding the middleware and a
runtime context with the user's id. Here the model is a scripted fake that prints what it is
given, so the script runs offline in a few seconds: alice has taught "bo" (a red mug) through the
store; she sends a photo of bo and the model is told what bo is; the model remembers a fact she
gives (its scripted answer calls `remember_fact`), and the next turn's note carries it; bob sends
the same photo and his model hears nothing of bo.

To run it on a real model, change the one line that makes `model` in `main`:

    model = ChatOpenAI(model="gpt-4o-mini")      # pip install langchain-openai; OPENAI_API_KEY set
    model = ChatOllama(model="llama3.2-vision")  # pip install langchain-ollama; Ollama running

(the real model then decides for itself when to call the concept tools), and for real
recognition use `ConceptStore()` with the real CLIP weights instead of the random tiny CLIP here.
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent_with_memory import draw_mug
from yollava_agent.memory import ConceptStore
from yollava_agent.tools import ConceptMemoryContext, ConceptMemoryMiddleware
from yollava_agent.training.negatives import ClipConfig

SCRIPT = [
    AIMessage("That is bo, your red ceramic mug."),
    AIMessage(
        "",
        tool_calls=[
            {
                "name": "remember_fact",
                "args": {"concept": "bo", "fact": "bo lives on the kitchen shelf"},
                "id": "call-1",
            }
        ],
    ),
    AIMessage("I'll remember that bo lives on the kitchen shelf."),
    AIMessage("bo is on the kitchen shelf."),
    AIMessage("A red mug."),
]
"""The fake model's answers, one per model call, in order."""


class ScriptedChatModel(FakeMessagesListChatModel):
    """Answers from a script and prints the system message of every request it gets."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        system = messages[0].text if isinstance(messages[0], SystemMessage) else "(none)"
        print(f"  the model's system message:\n{textwrap.indent(system, '    ')}")
        return super()._generate(messages, *args, **kwargs)


def photo_block(path: Path) -> dict[str, str]:
    """A LangChain image block with the photo as base64, as chat model integrations take it."""
    data = base64.b64encode(path.read_bytes()).decode()
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(tempfile.mkdtemp(prefix="yollava-any-model-"))
    try:
        photos = [draw_mug(folder / f"bo{i}.png", 20 * i) for i in range(4)]
        kitchen = draw_mug(folder / "kitchen.png", 30, background=(225, 235, 240))

        store = ConceptStore(folder / "home", clip=ClipConfig(model_name="tiny"))
        store.add_concept("alice", "bo", photos, description="a red ceramic mug")

        model = ScriptedChatModel(responses=SCRIPT)
        memory = ConceptMemoryMiddleware(store)
        agent = create_agent(
            model,
            tools=[],
            middleware=[memory],
            system_prompt="You are a helpful assistant.",
            context_schema=ConceptMemoryContext,
        )
        print(f"Agent tools, registered by the middleware: {[t.name for t in memory.tools]}")

        turns = [
            ("alice", [photo_block(kitchen), {"type": "text", "text": "What is this?"}]),
            ("alice", "Remember that bo lives on the kitchen shelf."),
            ("alice", "Where is bo?"),
            ("bob", [photo_block(kitchen), {"type": "text", "text": "What is this?"}]),
        ]
        for user, content in turns:
            shown = content if isinstance(content, str) else f"[photo] {content[-1]['text']}"
            print(f"\n{user}: {shown}")
            result = agent.invoke(
                {"messages": [HumanMessage(content=content)]},
                context=ConceptMemoryContext(user_id=user),
            )
            print(f"  answer: {result['messages'][-1].text}")
        print(f"\nalice's facts about bo: {[f.text for f in store.list_facts('alice', 'bo')]}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
