"""The store as the chat model's concept source: auto-activation by photo and by name."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from tests.conftest import make_concept, make_photo
from yollava_agent import ChatYoLLaVA, UnknownConceptError
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.training.negatives import ClipConfig

BO_PHOTOS = [make_photo((220, 40 + 25 * i, 30)) for i in range(3)]


@pytest.fixture
def store(tmp_path: Path) -> ConceptStore:
    store = ConceptStore(tmp_path / "home", clip=ClipConfig(model_name="tiny"))
    store.add_concept("alice", "bo", BO_PHOTOS, description="a red ceramic mug")
    store.add_concept("alice", "rex", [make_photo((30, 60, 220))], description="a blue toy")
    store.add_concept("bob", "zed", [make_photo((30, 220, 40))], description="a green cup")
    return store


def _block(image) -> dict[str, str]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"type": "image", "base64": base64.b64encode(buffer.getvalue()).decode(), "mime_type": "image/png"}


def _prompt(runtime, chat: ChatYoLLaVA, message: HumanMessage) -> str:
    with runtime.lock:
        turn = chat._prepare(runtime, [message], None, {})
        return runtime.tokenizer.decode(turn.inputs["input_ids"][0], skip_special_tokens=True)


@pytest.mark.parametrize("text", ["How is bo?", "how is <bo>?", "Is my mug BO clean?", "bo's handle"])
def test_naming_a_concept_activates_it(store: ConceptStore, text: str) -> None:
    assert StoreConceptSource(store, "alice").named_in(text) == ["bo"]


@pytest.mark.parametrize("text", ["a bonus", "rebooted", "elbow", "bo-peep"])
def test_names_inside_other_words_do_not(store: ConceptStore, text: str) -> None:
    assert StoreConceptSource(store, "alice").named_in(text) == []


def test_untrained_concept_named_in_text_is_described_with_its_facts(store, runtime) -> None:
    store.remember("alice", "bo", "bo was a gift from Ana")
    chat = ChatYoLLaVA(model="tiny", concept_source=StoreConceptSource(store, "alice"))
    text = _prompt(runtime, chat, HumanMessage("Where did bo come from?"))
    assert "bo is a red ceramic mug. Facts about bo: bo was a gift from Ana." in text
    assert "rex" not in text
    assert runtime.injected == {}


def test_a_photo_activates_the_concept_recognised_in_it(store, runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", concept_source=StoreConceptSource(store, "alice"))
    text = _prompt(runtime, chat, HumanMessage(content=[_block(BO_PHOTOS[1]), "What is this?"]))
    assert "bo is a red ceramic mug." in text


def test_a_trained_concept_comes_with_its_tokens(store, runtime) -> None:
    trained = make_concept(runtime, "bo")
    folder = trained.save_pretrained(store.artifact_dir("alice", "bo"))
    store.set_status("alice", "bo", "ready", artifact_path=folder)
    chat = ChatYoLLaVA(model="tiny", concept_source=StoreConceptSource(store, "alice"))
    text = _prompt(runtime, chat, HumanMessage("Describe bo."))
    assert "<bo> is <bo_1>" in text
    assert list(runtime.injected) == ["bo"]


def test_another_users_concepts_are_never_activated(store, runtime) -> None:
    chat = ChatYoLLaVA(model="tiny", concept_source=StoreConceptSource(store, "alice"))
    text = _prompt(runtime, chat, HumanMessage("Is zed here?"))
    assert "green cup" not in text
    with pytest.raises(UnknownConceptError, match=r"Unknown concept 'zed'"):
        chat.invoke("Hi", concepts=["zed"])


def test_answers_say_which_concepts_they_used_and_how_each_was_found(store, runtime) -> None:
    trained = make_concept(runtime, "rex")
    folder = trained.save_pretrained(store.artifact_dir("alice", "rex"))
    store.set_status("alice", "rex", "ready", artifact_path=folder)
    chat = ChatYoLLaVA(model="tiny", max_tokens=3, concept_source=StoreConceptSource(store, "alice"))
    question = HumanMessage(content=[_block(BO_PHOTOS[1]), "Is rex next to this?"])
    expected = [
        {"name": "rex", "found": "named", "tokens": True},
        {"name": "bo", "found": "recognised", "tokens": False},
    ]
    assert chat.invoke([question]).response_metadata["concepts"] == expected
    *_, last = chat.stream([question])
    assert last.response_metadata["concepts"] == expected
    assert chat.invoke("Hello").response_metadata["concepts"] == []
