"""`ConceptMemoryMiddleware` in `create_agent` agents, on a scripted fake chat model.

The fake answers from a script and records every request it receives (messages and bound tools),
so each test asserts exactly what the agent's model was given. The store uses the tiny CLIP; bo
is taught through the store. The last test drives `ChatYoLLaVA` on the tiny LLaVA.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from PIL import Image
from pydantic import Field

from tests.conftest import make_concept, make_photo, run_python
from yollava_agent import ChatYoLLaVA
from yollava_agent.memory import ConceptStore
from yollava_agent.tools import (
    ConceptMemoryContext,
    ConceptMemoryMiddleware,
    MissingUserError,
    TrainingQueue,
)
from yollava_agent.training.negatives import ClipConfig

SYSTEM = "You help the user with their things."
BO_PHOTOS = [make_photo((220, 40 + 25 * i, 30)) for i in range(3)]
BLUE_TOY = make_photo((30, 60, 220))
"""Not bo: below bo's threshold in alice's memory."""
GREEN_CUP = make_photo((30, 220, 40))
BO_NOTE = (
    "The photo shows bo, one of the user's own subjects: a red ceramic mug. Known facts: bo was a "
    "birthday present from Ana; bo's handle is chipped."
)


@dataclass
class Request:
    """What the model received in one call."""

    messages: list[BaseMessage]
    tools: list[dict[str, Any]]

    @property
    def system(self) -> str | None:
        first = self.messages[0]
        return first.text if isinstance(first, SystemMessage) else None


class RecordingChatModel(BaseChatModel):
    """Answers from `script`, one message per call, and records every request in `requests`."""

    script: list[AIMessage]
    requests: list[Request] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.requests.append(Request(list(messages), kwargs.get("tools") or []))
        if len(self.requests) > len(self.script):
            msg = f"Call {len(self.requests)} of the model, beyond its script of {len(self.script)}."
            raise AssertionError(msg)
        answer = self.script[len(self.requests) - 1].model_copy()
        return ChatResult(generations=[ChatGeneration(message=answer)])


def answers(*texts: str) -> list[AIMessage]:
    return [AIMessage(text) for text in texts]


def call(tool: str, args: dict[str, Any], call_id: str = "c1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": tool, "args": args, "id": call_id}])


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def photo_block(image: Image.Image) -> dict[str, str]:
    return {"type": "image", "base64": png_base64(image), "mime_type": "image/png"}


def turn(*content: Any, message_id: str = "h1") -> dict[str, list[HumanMessage]]:
    return {"messages": [HumanMessage(content=list(content), id=message_id)]}


def alice() -> ConceptMemoryContext:
    return ConceptMemoryContext(user_id="alice")


@pytest.fixture
def store(tmp_path: Path) -> ConceptStore:
    store = ConceptStore(tmp_path / "home", clip=ClipConfig(model_name="tiny"))
    store.add_concept("alice", "bo", BO_PHOTOS, description="a red ceramic mug")
    store.remember("alice", "bo", "bo was a birthday present from Ana")
    store.remember("alice", "bo", "bo's handle is chipped.")
    store.add_concept("bob", "zed", [GREEN_CUP], description="a green cup")
    return store


@pytest.fixture
def memory(store: ConceptStore) -> ConceptMemoryMiddleware:
    return ConceptMemoryMiddleware(store)


def agent_with(memory: ConceptMemoryMiddleware, model: RecordingChatModel) -> Any:
    return create_agent(
        model, middleware=[memory], system_prompt=SYSTEM, context_schema=ConceptMemoryContext
    )


def request_without_middleware(
    memory: ConceptMemoryMiddleware, message: dict[str, list[HumanMessage]]
) -> Request:
    """The first request of the same turn to an agent with the same tools and no middleware."""
    model = RecordingChatModel(script=answers("Hello."))
    create_agent(model, tools=memory.tools, system_prompt=SYSTEM).invoke(message)
    return model.requests[0]


# ---- what the model is given


def _data_url_block(image: Image.Image) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_base64(image)}"}}


def _path_block(image: Image.Image, folder: Path) -> dict[str, str]:
    path = folder / "park.png"
    image.save(path)
    return {"type": "image", "path": str(path)}


@pytest.mark.parametrize("form", ["base64", "data URL", "path"])
def test_a_photo_of_bo_brings_bo_into_the_request(memory, tmp_path, form) -> None:
    block = {
        "base64": lambda: photo_block(BO_PHOTOS[1]),
        "data URL": lambda: _data_url_block(BO_PHOTOS[1]),
        "path": lambda: _path_block(BO_PHOTOS[1], tmp_path),
    }[form]()
    model = RecordingChatModel(script=answers("That is bo."))
    message = turn(block, "What is this?")
    agent_with(memory, model).invoke(message, context=alice())

    (request,) = model.requests
    assert request.system == f"{SYSTEM}\n\n{BO_NOTE}"
    assert request.messages[1:] == message["messages"]


def test_a_photo_of_something_else_leaves_the_request_as_without_middleware(memory) -> None:
    model = RecordingChatModel(script=answers("Hello."))
    message = turn(photo_block(BLUE_TOY), "What is this?")
    agent_with(memory, model).invoke(message, context=alice())

    assert model.requests == [request_without_middleware(memory, message)]
    assert model.requests[0].system == SYSTEM


def test_another_user_sending_bos_photo_gets_nothing_of_bo(memory) -> None:
    model = RecordingChatModel(script=answers("A mug.", "Your green cup."))
    agent = agent_with(memory, model)
    message = turn(photo_block(BO_PHOTOS[1]), "Is bo in this photo?")
    agent.invoke(message, context=ConceptMemoryContext(user_id="bob"))
    # bob's own memory works in the same agent: naming zed brings zed.
    agent.invoke(turn("Where is zed?", message_id="h2"), context={"user_id": "bob"})

    assert model.requests[0] == request_without_middleware(memory, message)
    assert model.requests[1].system == (
        f"{SYSTEM}\n\nThe user mentions zed, one of their own subjects: a green cup."
    )


def test_after_forget_concept_nothing_of_bo(memory, store) -> None:
    model = RecordingChatModel(
        script=[call("forget_concept", {"name": "bo"}), *answers("Forgotten.", "A mug.")]
    )
    agent = agent_with(memory, model)
    result = agent.invoke(turn("Please forget bo."), context=alice())
    tool_result = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert tool_result.status == "success"
    assert tool_result.content.startswith("Forgot 'bo': its 3 photos, 2 facts are deleted.")

    message = turn(photo_block(BO_PHOTOS[1]), "Is bo here?", message_id="h2")
    agent.invoke(message, context=alice())
    assert model.requests[-1] == request_without_middleware(memory, message)
    assert store.list_concepts("alice") == []


def test_a_fact_the_model_remembers_is_in_the_next_turns_note(memory, store) -> None:
    fact = "bo holds the pens on the desk"
    model = RecordingChatModel(
        script=[call("remember_fact", {"concept": "bo", "fact": fact}), *answers("Noted.", "bo.")]
    )
    agent = agent_with(memory, model)
    agent.invoke(turn("bo holds the pens on my desk, remember that."), context=alice())
    agent.invoke(turn(photo_block(BO_PHOTOS[0]), "What is this?", message_id="h2"), context=alice())

    assert [f.text for f in store.list_facts("alice", "bo")][-1] == fact
    assert model.requests[-1].system == f"{SYSTEM}\n\n{BO_NOTE[:-1]}; {fact}."


def test_only_the_latest_human_turn_counts(memory) -> None:
    model = RecordingChatModel(script=answers("bo is your mug.", "You're welcome."))
    agent = agent_with(memory, model)
    first = agent.invoke(turn("How is bo?"), context=alice())
    follow_up = {"messages": [*first["messages"], HumanMessage("Thanks!", id="h2")]}
    agent.invoke(follow_up, context=alice())

    assert model.requests[0].system == (
        f"{SYSTEM}\n\nThe user mentions bo, one of their own subjects: a red ceramic mug. Known "
        "facts: bo was a birthday present from Ana; bo's handle is chipped."
    )
    assert model.requests[1].system == SYSTEM


def test_photos_are_numbered_and_an_unreadable_one_is_skipped_with_a_warning(
    memory, caplog
) -> None:
    remote = {"type": "image", "url": "https://example.com/park.jpg"}
    model = RecordingChatModel(script=answers("bo is in the third."))
    caplog.set_level(logging.WARNING, logger="yollava_agent.tools.middleware")
    message = turn(remote, photo_block(BLUE_TOY), photo_block(BO_PHOTOS[2]), "Who is where?")
    agent_with(memory, model).invoke(message, context=alice())

    assert model.requests[0].system == f"{SYSTEM}\n\n" + BO_NOTE.replace(
        "The photo shows bo", "Photo 3 shows bo"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "Concept memory did not look at photo 1: Image URL 'https://example.com/park.jpg' is "
        "remote; remote images are not fetched. Download it and send a local path or a base64 "
        "data URL instead."
    ]


def test_max_facts_keeps_the_newest(store) -> None:
    model = RecordingChatModel(script=answers("A mug."))
    agent_with(ConceptMemoryMiddleware(store, max_facts=1), model).invoke(
        turn(photo_block(BO_PHOTOS[1])), context=alice()
    )
    assert model.requests[0].system == (
        f"{SYSTEM}\n\nThe photo shows bo, one of the user's own subjects: a red ceramic mug. "
        "Known facts: bo's handle is chipped."
    )
    with pytest.raises(ValueError, match=r"max_facts must be 0 or more, got -1\."):
        ConceptMemoryMiddleware(store, max_facts=-1)


def test_an_agent_without_a_system_prompt_gets_the_note_as_its_system_message(memory) -> None:
    model = RecordingChatModel(script=answers("That is bo."))
    create_agent(model, middleware=[memory]).invoke(
        turn(photo_block(BO_PHOTOS[1])), context=alice()
    )
    assert model.requests[0].messages[0] == SystemMessage(BO_NOTE)


def test_async_runs_get_the_same_note(memory) -> None:
    model = RecordingChatModel(script=answers("That is bo."))
    agent = agent_with(memory, model)
    asyncio.run(agent.ainvoke(turn(photo_block(BO_PHOTOS[1])), context=alice()))
    assert model.requests[0].system == f"{SYSTEM}\n\n{BO_NOTE}"


# ---- whose memory


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        (None, "and it has none: create the agent with context_schema=ConceptMemoryContext"),
        ({"session": "s1"}, "and the context dict has no user_id: create the agent with"),
        ({"user_id": " "}, "User id ' ' in the agent's runtime context is not valid: give a"),
    ],
)
def test_a_run_without_a_user_id_is_refused_before_the_model_runs(memory, context, problem):
    model = RecordingChatModel(script=answers("Hello."))
    agent = create_agent(model, middleware=[memory], system_prompt=SYSTEM)
    with pytest.raises(MissingUserError, match=problem) as refused:
        agent.invoke(turn(photo_block(BO_PHOTOS[1]), "What is this?"), context=context)
    assert str(refused.value).endswith("Nothing was run.")
    assert model.requests == []


def test_the_tools_act_for_the_user_of_the_run_and_take_no_user_argument(memory) -> None:
    model = RecordingChatModel(
        script=[
            call("list_concepts", {"user_id": "bob", "runtime": {"context": {"user_id": "bob"}}}),
            *answers("You have bo."),
            call("list_concepts", {}),
            *answers("You have zed."),
        ]
    )
    agent = agent_with(memory, model)
    as_alice = agent.invoke(turn("What do I have?"), context=alice())
    as_bob = agent.invoke(turn("What do I have?", message_id="h2"), context={"user_id": "bob"})

    alices, bobs = (
        next(m for m in r["messages"] if isinstance(m, ToolMessage)) for r in (as_alice, as_bob)
    )
    assert alices.content == "You have 1 concept:\n- bo: taught, 3 photos, 2 facts"
    assert bobs.content == "You have 1 concept:\n- zed: taught, 1 photo, 0 facts"
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in model.requests[0].tools}
    assert sorted(schemas) == [
        "concept_status", "forget_concept", "list_concepts", "recognize_concepts",
        "remember_fact", "teach_concept",
    ]
    for parameters in schemas.values():
        assert not {"user_id", "runtime"} & set(parameters.get("properties", {}))


def test_the_tools_called_outside_an_agent_say_how_to_use_them(memory) -> None:
    tools = {tool.name: tool for tool in memory.tools}
    with pytest.raises(MissingUserError, match=r"Tool 'list_concepts' acts for the user of the "):
        tools["list_concepts"].invoke({})


def test_teaching_without_a_queue_gives_the_instant_tier_at_once(memory, store, tmp_path) -> None:
    paths = []
    for i, image in enumerate([BLUE_TOY, make_photo((40, 70, 230)), make_photo((50, 60, 240))]):
        paths.append(str(tmp_path / f"toy{i}.png"))
        image.save(paths[-1])
    model = RecordingChatModel(
        script=[call("teach_concept", {"name": "kip", "photo_paths": paths}), *answers("Done.")]
        + answers("That is kip.")
    )
    agent = agent_with(memory, model)
    result = agent.invoke(turn("This is my toy kip."), context=alice())
    taught = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert taught.content == (
        "Taught 'kip' from 3 photos: I recognise it in photos now. Its own tokens are not trained "
        "here (this agent has no training queue)."
    )
    assert store.get_concept("alice", "kip").status == "taught"

    agent.invoke(turn(photo_block(BLUE_TOY), message_id="h2"), context=alice())
    assert model.requests[-1].system == (
        f"{SYSTEM}\n\nThe photo shows kip, one of the user's own subjects."
    )


def test_teaching_with_a_queue_trains_for_the_user_of_the_run(store, tmp_path) -> None:
    def no_base() -> Any:
        raise RuntimeError("no base model in this test")

    queue = TrainingQueue(store, runtime_factory=no_base)
    try:
        paths = []
        for i, image in enumerate([BLUE_TOY, make_photo((40, 70, 230)), make_photo((50, 60, 240))]):
            paths.append(str(tmp_path / f"toy{i}.png"))
            image.save(paths[-1])
        model = RecordingChatModel(
            script=[call("teach_concept", {"name": "kip", "photo_paths": paths}), *answers("Ok.")]
        )
        agent_with(ConceptMemoryMiddleware(store, queue), model).invoke(
            turn("This is kip."), context=alice()
        )
        job = queue.job("alice", "kip")
        assert job is not None and job.finished.wait(30)
        assert job.error.endswith("no base model in this test")
        assert queue.job("bob", "kip") is None
    finally:
        queue.close()


# ---- ChatYoLLaVA as the agent's model


class ModelRequests(AgentMiddleware):
    """Records the requests that reach the model, after the middleware before it."""

    def __init__(self) -> None:
        self.seen: list[ModelRequest] = []

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        self.seen.append(request)
        return handler(request)


def test_with_chat_yollava_trained_tokens_replace_the_note(memory, store, runtime) -> None:
    folder = make_concept(runtime, "bo").save_pretrained(store.artifact_dir("alice", "bo"))
    store.set_status("alice", "bo", "ready", artifact_path=folder)
    recorder = ModelRequests()
    chat = ChatYoLLaVA(model="tiny", device="cpu", dtype="fp32", max_tokens=2)
    agent = create_agent(
        chat,
        middleware=[memory, recorder],
        system_prompt=SYSTEM,
        context_schema=ConceptMemoryContext,
    )
    agent.invoke(turn(photo_block(BO_PHOTOS[1]), "What is this?"), context=alice())

    (request,) = recorder.seen
    assert request.system_message == SystemMessage(SYSTEM)
    (bo,) = request.model.concepts
    assert bo.name == "bo" and bo.concept is not None
    assert bo.facts == ("bo was a birthday present from Ana", "bo's handle is chipped.")
    assert chat.concepts == []  # the agent's own model is not changed
    assert list(runtime.injected) == ["bo"]
    with runtime.lock:
        prepared = request.model._prepare(runtime, request.messages, None, {})
        prompt = runtime.tokenizer.decode(prepared.inputs["input_ids"][0])
    assert "<bo>is<bo_1><bo_2>" in prompt.replace(" ", "")


# ---- the example


def test_the_any_model_example_runs_offline_and_shows_what_the_model_is_given() -> None:
    result = run_python("examples/any_model_agent.py")
    assert result.returncode == 0, result.stderr[-3000:]
    system = "  the model's system message:\n    You are a helpful assistant.\n"
    note = "    The user mentions bo, one of their own subjects: a red ceramic mug."
    expected = [
        "\nalice: [photo] What is this?\n" + system + "\n"
        "    The photo shows bo, one of the user's own subjects: a red ceramic mug.\n"
        "  answer: That is bo, your red ceramic mug.\n",
        "\nalice: Remember that bo lives on the kitchen shelf.\n" + system + "\n" + note + "\n"
        + system + "\n" + note + " Known facts: bo lives on the kitchen shelf.\n",
        "\nalice: Where is bo?\n" + system + "\n" + note
        + " Known facts: bo lives on the kitchen shelf.\n  answer: bo is on the kitchen shelf.\n",
        "\nbob: [photo] What is this?\n" + system + "  answer: A red mug.\n",
        "\nalice's facts about bo: ['bo lives on the kitchen shelf']",
    ]
    at = 0
    for part in expected:
        found = result.stdout.find(part, at)
        assert found >= 0, f"missing after offset {at}: {part!r}\n---\n{result.stdout}"
        at = found + len(part)
