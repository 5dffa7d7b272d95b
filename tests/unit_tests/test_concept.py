"""Concept artifacts: names, save/load round trip, atomic saves, base checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import yollava_agent.concept as concept_module
from tests.conftest import make_concept
from yollava_agent import (
    BaseFingerprint,
    Concept,
    ConceptBaseMismatchError,
    ConceptLoadError,
    InvalidConceptNameError,
    validate_concept_name,
)


@pytest.mark.parametrize("name", ["bo", "my-mug", "Zoë", "dog-2", "dog_two", "2_dogs", "A" * 40])
def test_safe_names_are_accepted(name: str) -> None:
    assert validate_concept_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("a/b", "not a safe identifier"),
        ("..", "not a safe identifier"),
        ("a\\b", "not a safe identifier"),
        ("bo\x00", "not a safe identifier"),
        ("bo\n", "not a safe identifier"),
        ("<bo>", "not a safe identifier"),
        ("my dog", "not a safe identifier"),
        ("_bo", "not a safe identifier"),
        ("x" * 41, "41 characters long"),
        ("bo_1", r"ends in '_' and digits.*<bo_1> is a latent token of 'bo'.*such as 'bo-1'"),
        ("dog_22", "ends in '_' and digits"),
        (7, "must be a string"),
    ],
)
def test_unsafe_names_are_refused_with_the_name(name: object, message: str) -> None:
    with pytest.raises(InvalidConceptNameError, match=message) as info:
        validate_concept_name(name)
    if isinstance(name, str) and name:
        assert repr(name)[:20] in str(info.value)


def test_save_and_load_round_trip(runtime, tmp_path: Path) -> None:
    concept = make_concept(runtime, "bo", seed=3)
    concept.training = {"epochs": 15, "best_accuracy": 0.95}
    concept.description = "my dog"
    folder = concept.save_pretrained(tmp_path / "bo")

    config = json.loads((folder / "concept.json").read_text())
    assert config["name"] == "bo"
    assert config["identifier_token"] == "<bo>"
    assert config["num_latent_tokens"] == 16
    assert config["base"]["model_id"] == "tiny"
    assert config["base"]["hidden_size"] == runtime.base.hidden_size
    assert config["training"] == {"epochs": 15, "best_accuracy": 0.95}
    assert sorted(p.name for p in folder.iterdir()) == ["concept.json", "concept.safetensors"]

    loaded = Concept.from_pretrained(folder, base=runtime.base)
    assert torch.equal(loaded.input_embeddings, concept.input_embeddings)
    assert torch.equal(loaded.output_embeddings, concept.output_embeddings)
    assert loaded.base == concept.base
    assert (loaded.description, loaded.created, loaded.version) == ("my dog", concept.created, 1)


def test_a_failed_save_keeps_the_previous_version(runtime, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "bo"
    first = make_concept(runtime, "bo", seed=1)
    first.save_pretrained(folder)

    def crash(*args, **kwargs):
        raise RuntimeError("disk vanished mid-write")

    monkeypatch.setattr(concept_module, "save_file", crash)
    with pytest.raises(RuntimeError, match="disk vanished"):
        make_concept(runtime, "bo", seed=2).save_pretrained(folder)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["bo"]
    kept = Concept.from_pretrained(folder)
    assert torch.equal(kept.input_embeddings, first.input_embeddings)


def test_a_save_killed_between_renames_is_recovered(runtime, tmp_path: Path) -> None:
    folder = tmp_path / "bo"
    first = make_concept(runtime, "bo", seed=1)
    first.save_pretrained(folder)
    folder.rename(tmp_path / ".bo.old-abc123")  # the state a kill between the two renames leaves

    recovered = Concept.from_pretrained(folder)
    assert torch.equal(recovered.input_embeddings, first.input_embeddings)

    second = make_concept(runtime, "bo", seed=2)
    second.save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bo"]
    assert torch.equal(Concept.from_pretrained(folder).input_embeddings, second.input_embeddings)


def test_loading_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConceptLoadError, match=r"No concept at .*nowhere.*teach the concept"):
        Concept.from_pretrained(tmp_path / "nowhere")


def test_loading_a_corrupt_folder_names_it(runtime, tmp_path: Path) -> None:
    folder = make_concept(runtime, "bo").save_pretrained(tmp_path / "bo")
    (folder / "concept.json").write_text("{not json")
    with pytest.raises(ConceptLoadError, match=r"is corrupt"):
        Concept.from_pretrained(folder)


def test_rows_of_the_wrong_width_are_refused(runtime) -> None:
    rows = torch.zeros(17, runtime.base.hidden_size + 1)
    with pytest.raises(ValueError, match=r"rows are 65 wide but the base 'tiny' has hidden size 64"):
        Concept("bo", rows, rows, runtime.base)


def test_loading_onto_another_base_names_both(runtime, tmp_path: Path) -> None:
    folder = make_concept(runtime, "bo").save_pretrained(tmp_path / "bo")
    other = BaseFingerprint(
        model_id="llava-hf/llava-1.5-7b-hf",
        hidden_size=4096,
        vocab_size=32064,
        tokenizer_sha256="f" * 64,
        embedding_sha256="e" * 64,
    )
    with pytest.raises(ConceptBaseMismatchError) as info:
        Concept.from_pretrained(folder, base=other)
    message = str(info.value)
    assert "'tiny'" in message
    assert "'llava-hf/llava-1.5-7b-hf'" in message
    assert "teach 'bo' again" in message


@pytest.mark.parametrize(
    ("name", "token"), [("s", "<s>"), ("image", "<image>"), ("unk", "<unk>"), ("think", "<think_3>")]
)
def test_names_whose_tokens_the_base_has_are_refused(name: str, token: str) -> None:
    vocabulary = {"<s>", "</s>", "<unk>", "<image>", "<think_3>", "hello"}
    with pytest.raises(InvalidConceptNameError, match=rf"{name!r} cannot be used with this model: its vocabulary already has the token {token!r}"):
        validate_concept_name(name, vocabulary)
    assert validate_concept_name("bo", vocabulary) == "bo"
