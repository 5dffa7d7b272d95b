"""`ChatYoLLaVA` end to end on the tiny model: answers, streaming, concepts, tools, errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from PIL import Image

from tests.conftest import make_concept, make_photo
from yollava_agent import (
    ActiveConcept,
    BaseFingerprint,
    ChatYoLLaVA,
    Concept,
    ConceptBaseMismatchError,
    ConceptSource,
    ImageInputError,
    ModelLoadError,
    UnknownConceptError,
    UnsupportedMessageError,
)
from yollava_agent.tool_calling import parse_tool_calls


def _photo_block() -> dict[str, str]:
    buffer = io.BytesIO()
    make_photo().save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def _question() -> list[HumanMessage]:
    return [HumanMessage(content=[_photo_block(), {"type": "text", "text": "Is <bo> here?"}])]


def test_construction_does_not_load_a_model() -> None:
    chat = ChatYoLLaVA(model="no-such/checkpoint")
    with pytest.raises(ModelLoadError, match=r"'no-such/checkpoint'.*model='tiny'"):
        chat.invoke("hello")


def test_instances_with_the_same_model_share_it(runtime) -> None:
    first = ChatYoLLaVA(model="tiny", device="cpu", temperature=0.0)
    second = ChatYoLLaVA(model="tiny", device="cpu", max_tokens=5)
    assert first.runtime is second.runtime is runtime


def test_invoke_answers_with_a_photo_and_a_concept(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", concepts=[make_concept(runtime, "bo")], max_tokens=8)
    answer = chat.invoke(_question())
    assert isinstance(answer, AIMessage)
    assert answer.usage_metadata["output_tokens"] == 8
    assert answer.usage_metadata["input_tokens"] > 16  # 16 image tokens and the text
    assert "<bo_" not in answer.text  # latent tokens never reach the user
    assert list(runtime.injected) == ["bo"]


def test_stream_gives_the_same_answer_as_invoke(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", concepts=[make_concept(runtime, "bo")], max_tokens=16)
    question = "What colour is <bo>?"
    chunks = list(chat.stream(question))
    assert len(chunks) > 2
    streamed = "".join(chunk.text for chunk in chunks)
    assert streamed == chat.invoke(question).text
    assert chunks[-1].usage_metadata["output_tokens"] == 16


def test_stop_strings_end_the_answer(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", max_tokens=24)
    full = chat.invoke("Tell me a story.").text
    stop = full.split()[1]
    stopped = chat.invoke("Tell me a story.", stop=[stop]).text
    assert stop not in stopped
    assert full.startswith(stopped)


def test_sampling_with_a_seed_repeats(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", temperature=1.0, seed=7, max_tokens=12)
    assert chat.invoke("Hello").text == chat.invoke("Hello").text


def test_unknown_concept_is_named() -> None:
    chat = ChatYoLLaVA(model="tiny")
    with pytest.raises(UnknownConceptError, match=r"Unknown concept 'rex'"):
        chat.invoke("Where is rex?", concepts=["rex"])


def test_concept_of_another_base_is_refused(runtime) -> None:
    other = BaseFingerprint("llava-hf/llava-1.5-13b-hf", 64, 32064, "a" * 64, "b" * 64)
    foreign = Concept("bo", make_concept(runtime, "bo").input_embeddings,
                      make_concept(runtime, "bo").output_embeddings, other)
    chat = ChatYoLLaVA(model="tiny", concepts=[foreign])
    with pytest.raises(ConceptBaseMismatchError, match=r"llava-1.5-13b-hf.*'tiny'"):
        chat.invoke("Hi")


def test_bad_image_block_is_named() -> None:
    chat = ChatYoLLaVA(model="tiny")
    broken = {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
    with pytest.raises(ImageInputError, match=r"'data:image/png;base64,aGVsbG8=' is not an image"):
        chat.invoke([HumanMessage(content=[broken, "What is this?"])])


def test_unsupported_message_type_is_named() -> None:
    chat = ChatYoLLaVA(model="tiny")
    with pytest.raises(UnsupportedMessageError, match=r"ChatMessage \(role 'chat'\)"):
        chat.invoke([ChatMessage(role="critic", content="Rate this.")])


def test_unsupported_content_block_is_named() -> None:
    chat = ChatYoLLaVA(model="tiny")
    audio = {"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}
    with pytest.raises(UnsupportedMessageError, match=r"type 'audio' in a HumanMessage"):
        chat.invoke([HumanMessage(content=[audio, "What is this?"])])


class _MemorySource:
    """A concept source like long-term memory: concepts by name, and by what a turn mentions."""

    def __init__(self, concepts: Sequence[ActiveConcept]) -> None:
        self.by_name = {c.name: c for c in concepts}
        self.seen: list[tuple[str, int]] = []

    def get_concept(self, name: str) -> ActiveConcept:
        if name not in self.by_name:
            msg = f"Unknown concept {name!r} in memory."
            raise UnknownConceptError(msg)
        return self.by_name[name]

    def concepts_for(self, text: str, images: Sequence[Image.Image]) -> list[ActiveConcept]:
        self.seen.append((text, len(images)))
        return [c for name, c in self.by_name.items() if name in text]


def test_concept_source_resolves_and_auto_activates(runtime) -> None:
    bo = ActiveConcept.from_concept(make_concept(runtime, "bo"))
    source = _MemorySource([bo, ActiveConcept(name="mug", description="a blue mug")])
    assert isinstance(source, ConceptSource)
    chat = ChatYoLLaVA(model="tiny", concept_source=source, max_tokens=4)

    chat.invoke([HumanMessage(content=[_photo_block(), "Is bo in this photo?"])])
    assert source.seen[-1] == ("Is bo in this photo?", 1)
    assert list(runtime.injected) == ["bo"]

    chat.invoke("What is new?", concepts=["mug"])  # untrained: words, no tokens
    assert runtime.injected == {}
    with pytest.raises(UnknownConceptError, match=r"'rex' in memory"):
        chat.invoke("Hi", concepts=["rex"])


def test_tool_calls_are_parsed_from_json_answers() -> None:
    text = 'Sure. {"name": "remember_fact", "arguments": {"concept": "bo", "fact": "likes rain"}}'
    calls = parse_tool_calls(text, ["remember_fact"])
    assert [(c["name"], c["args"]) for c in calls] == [
        ("remember_fact", {"concept": "bo", "fact": "likes rain"})
    ]
    assert parse_tool_calls('{"name": "other", "arguments": {}}', ["remember_fact"]) == []


@tool
def list_concepts() -> str:
    """List the user's concepts."""
    return "bo"


def test_bound_tools_are_described_in_the_prompt(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", max_tokens=4)
    with runtime.lock:
        turn = chat._prepare(
            runtime,
            [HumanMessage("What do you know?")],
            None,
            {"tools": chat.bind_tools([list_concepts]).kwargs["tools"], "tool_choice": "any"},
        )
        text = runtime.tokenizer.decode(turn.inputs["input_ids"][0], skip_special_tokens=True)
    assert "- list_concepts: List the user's concepts." in text
    assert "You must call one of the tools." in text


def test_history_with_tool_calls_and_results_renders(runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", max_tokens=4)
    call = {"name": "list_concepts", "args": {}, "id": "call_1", "type": "tool_call"}
    messages = [
        HumanMessage("Which concepts do I have?"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(content="bo", name="list_concepts", tool_call_id="call_1"),
    ]
    with runtime.lock:
        turn = chat._prepare(runtime, messages, None, {})
        text = runtime.tokenizer.decode(turn.inputs["input_ids"][0], skip_special_tokens=True)
    assert 'ASSISTANT: {"name": "list_concepts", "arguments": {}}' in text
    assert "USER: Result of list_concepts: bo" in text


def test_create_agent_drives_the_model(runtime) -> None:
    agent = create_agent(ChatYoLLaVA(model="tiny", max_tokens=6), tools=[list_concepts])
    state = agent.invoke({"messages": [HumanMessage("Which concepts do I have?")]})
    assert isinstance(state["messages"][-1], AIMessage)
    assert state["messages"][0].text == "Which concepts do I have?"


def test_a_prompt_longer_than_the_model_takes_is_refused_with_the_numbers(runtime) -> None:
    from yollava_agent import PromptTooLongError

    chat = ChatYoLLaVA(model="tiny", max_tokens=8)
    context = runtime.model.config.get_text_config().max_position_embeddings
    with pytest.raises(
        PromptTooLongError, match=rf"more than the {context - 8} the model takes \(its context of {context} less max_tokens 8\)"
    ):
        chat.invoke("word " * 2000)
    limited = ChatYoLLaVA(model="tiny", max_tokens=8, max_prompt_tokens=12)
    with pytest.raises(PromptTooLongError, match=r"more than the 12 the model takes \(max_prompt_tokens\)"):
        limited.invoke("a question that is longer than twelve tokens for sure")
    assert chat.invoke("Hello").usage_metadata["output_tokens"] == 8  # the model is not stuck
