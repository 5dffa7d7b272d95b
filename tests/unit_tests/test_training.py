"""Concept training on the tiny model: the loss falls, only the concept's rows change, runs repeat."""

from __future__ import annotations

import threading

import pytest
import torch
from langchain_core.messages import HumanMessage

from tests.conftest import make_photo
from yollava_agent import ChatYoLLaVA, Concept, InvalidConceptNameError
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import RECOGNITION_QUESTIONS
from yollava_agent.training.trainer import TrainingCancelled, TrainingEvent, train_concept

FAST = TrainingConfig(
    epochs=4, batch_size=4, warmup_epochs=1, turns_per_positive=4, attribute_answer_tokens=4,
    learning_rate=1e-2,
)


def _photos(count: int, blue: bool = False) -> list[tuple[str, object]]:
    return [
        (f"{'n' if blue else 'p'}{i}.png", make_photo((30, 40 + 9 * i, 220) if blue else (220, 40 + 9 * i, 30)))
        for i in range(count)
    ]


def test_loss_falls_and_accuracy_is_reported(runtime) -> None:
    events: list[TrainingEvent] = []
    concept = train_concept(runtime, "bo", _photos(3), _photos(6, blue=True), FAST, events.append)

    stats = concept.training
    assert stats["epochs"] == 4
    assert stats["epoch_losses"][-1] < stats["epoch_losses"][0]
    assert all(0.0 <= a <= 1.0 for a in stats["epoch_accuracies"])
    assert stats["best_epoch"] in (2, 3, 4)  # after the warm-up epoch
    assert stats["samples"] == {"positive": 12, "negative": 6, "text": 30}
    steps = events[-1].steps_per_epoch
    assert steps == 12 and len(events) == 4 * steps
    assert [(e.epoch, e.step) for e in events[:2]] == [(1, 1), (1, 2)]
    assert events[-1].eta_seconds == 0.0 and events[0].eta_seconds > 0
    assert events[-1].accuracy == stats["epoch_accuracies"][-1]


def test_only_the_concepts_rows_change(runtime) -> None:
    before = {k: v.clone() for k, v in runtime.model.state_dict().items()}
    concept = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), FAST)

    after = runtime.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "a base parameter changed"
    assert runtime.injected == {}

    runtime.inject(concept)
    base_rows = runtime.base.vocab_size
    inputs = runtime.model.get_input_embeddings().weight
    outputs = runtime.model.get_output_embeddings().weight
    assert torch.equal(inputs[:base_rows], before["model.language_model.embed_tokens.weight"])
    assert torch.equal(outputs[:base_rows], before["lm_head.weight"])
    assert inputs.shape[0] == base_rows + 17


def test_training_moves_the_rows_and_is_deterministic(runtime) -> None:
    first = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), FAST)
    second = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), FAST)
    assert torch.equal(first.input_embeddings, second.input_embeddings)
    assert torch.equal(first.output_embeddings, second.output_embeddings)
    other_seed = TrainingConfig(**{**FAST.__dict__, "seed": 1})
    third = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), other_seed)
    assert not torch.equal(first.input_embeddings, third.input_embeddings)


def test_trained_concept_saved_and_loaded_reproduces_logits(runtime, tmp_path) -> None:
    concept = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), FAST)
    loaded = Concept.from_pretrained(concept.save_pretrained(tmp_path / "bo"), base=runtime.base)
    assert loaded.training == concept.training

    def logits(c: Concept) -> torch.Tensor:
        chat = ChatYoLLaVA(model="tiny", concepts=[c])
        with runtime.lock, torch.inference_mode():
            turn = chat._prepare(runtime, [HumanMessage("What colour is <bo>?")], None, {})
            return runtime.model(**turn.inputs).logits

    assert torch.equal(logits(concept), logits(loaded))


def test_cancel_stops_training_and_restores_the_runtime(runtime) -> None:
    cancel = threading.Event()
    other = train_concept(runtime, "mug", _photos(2), [], FAST)
    runtime.inject(other)

    def stop_after_three(event: TrainingEvent) -> None:
        if event.step == 3:
            cancel.set()

    with pytest.raises(TrainingCancelled, match=r"'bo' was cancelled; nothing was saved"):
        train_concept(runtime, "bo", _photos(3), [], FAST, stop_after_three, cancel)
    assert list(runtime.injected) == ["mug"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("a/b", "not a safe identifier"),
        ("bo\x07", "not a safe identifier"),
        ("b" * 41, "41 characters long"),
        ("image", r"cannot be used with the model 'tiny': its vocabulary already has the token '<image>'"),
    ],
)
def test_unsafe_names_are_refused_before_training(runtime, name: str, message: str) -> None:
    with pytest.raises(InvalidConceptNameError, match=message):
        train_concept(runtime, name, _photos(1), [], FAST)


def test_no_photos_is_refused(runtime) -> None:
    with pytest.raises(ValueError, match=r"'bo' needs at least one photo"):
        train_concept(runtime, "bo", [], [], FAST)


def test_config_checks_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"epochs must be a positive integer, got 0"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match=r"learning_rate must be > 0, got -1"):
        TrainingConfig(learning_rate=-1)
    with pytest.raises(ValueError, match=r"subject_kind must be 'object' or 'person', got 'plant'"):
        TrainingConfig(subject_kind="plant")
    with pytest.raises(ValueError, match=rf"turns_per_positive must be at most {len(RECOGNITION_QUESTIONS)}"):
        TrainingConfig(turns_per_positive=len(RECOGNITION_QUESTIONS) + 1)


def test_recognition_phrasings_are_many_and_distinct() -> None:
    assert len(set(RECOGNITION_QUESTIONS)) == len(RECOGNITION_QUESTIONS) >= 30
    assert all("{c}" in q for q in RECOGNITION_QUESTIONS)
