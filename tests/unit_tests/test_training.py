"""Concept training on the tiny model: the loss falls, only the concept's rows change, runs repeat."""

from __future__ import annotations

import threading
from dataclasses import replace

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
    kinds = stats["epoch_kind_losses"]
    assert len(kinds) == 4 and all(set(k) == {"positive", "negative", "text"} for k in kinds)
    # The text-only turns fit as the run goes, which the recognition accuracies cannot show.
    assert kinds[-1]["text"] < kinds[0]["text"]
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
    with pytest.raises(ValueError, match=r"output_learning_rate must be > 0 or None, got 0"):
        TrainingConfig(output_learning_rate=0)
    with pytest.raises(ValueError, match=r"latent_init must be 'mean' or 'image', got 'random'"):
        TrainingConfig(latent_init="random")
    with pytest.raises(ValueError, match=r"num_latent_tokens must be an integer >= 0, got -1"):
        TrainingConfig(num_latent_tokens=-1)
    with pytest.raises(ValueError, match=r"restarts must be an integer >= 0, got -1"):
        TrainingConfig(restarts=-1)
    with pytest.raises(ValueError, match=r"restart_below_accuracy must be in \[0, 1\] \(a share of training turns\), got 90"):
        TrainingConfig(restart_below_accuracy=90)
    with pytest.raises(ValueError, match=r"subject_kind must be 'object' or 'person', got 'plant'"):
        TrainingConfig(subject_kind="plant")
    with pytest.raises(ValueError, match=rf"turns_per_positive must be at most {len(RECOGNITION_QUESTIONS)}"):
        TrainingConfig(turns_per_positive=len(RECOGNITION_QUESTIONS) + 1)


def test_latent_rows_can_start_at_the_centres_of_the_photos_image_tokens(runtime) -> None:
    from yollava_agent.training.latent_init import image_token_rows, kmeans
    from yollava_agent.training.trainer import initial_concept

    photos = [photo for _, photo in _photos(3)]
    rows = image_token_rows(runtime, photos, 4, seed=0)
    views = runtime.processor.image_processor(images=photos, return_tensors="pt")
    with torch.no_grad():
        features = runtime.model.model.get_image_features(pixel_values=views["pixel_values"])
    features = getattr(features, "pooler_output", features)
    tokens = torch.cat([f.reshape(-1, f.shape[-1]) for f in features])
    assert torch.equal(rows, kmeans(tokens, 4, seed=0))
    # Every centre is the mean of the tokens nearest to it.
    nearest = torch.cdist(tokens, rows).argmin(1)
    for index in range(4):
        assert torch.allclose(rows[index], tokens[nearest == index].mean(0), atol=1e-5)
    concept = initial_concept(runtime, "bo", 4, seed=0, latent_rows=rows)
    assert torch.equal(concept.input_embeddings[1:], rows)
    mean = initial_concept(runtime, "bo", 4, seed=0)
    assert torch.equal(concept.input_embeddings[0], mean.input_embeddings[0])
    assert torch.equal(concept.output_embeddings, mean.output_embeddings)


def test_kmeans_finds_separated_clusters_and_refuses_nothing_to_cluster() -> None:
    from yollava_agent.training.latent_init import kmeans

    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(30, 2, generator=generator) for c in centres])
    found = kmeans(points, 3, seed=1)
    distance = torch.cdist(found, centres).min(1).values
    assert float(distance.max()) < 0.1
    with pytest.raises(ValueError, match=r"k-means needs k >= 1 and at least one point, got k=0"):
        kmeans(points, 0, seed=0)


def test_image_init_trains_from_the_photos_image_tokens(runtime) -> None:
    from yollava_agent.training.latent_init import image_token_rows

    photos = _photos(3)
    config = TrainingConfig(
        epochs=2, batch_size=4, warmup_epochs=1, turns_per_positive=4, attribute_answer_tokens=4,
        learning_rate=1e-5, num_latent_tokens=4,
    )
    negatives = _photos(4, blue=True)
    image_config = replace(config, latent_init="image")
    from_images = train_concept(runtime, "bo", photos, negatives, image_config).input_embeddings[1:]
    from_mean = train_concept(runtime, "bo", photos, negatives, config).input_embeddings[1:]
    start = image_token_rows(runtime, [photo for _, photo in photos], 4, config.seed)
    # Training moves rows a little: each run ends near where it started, far from the other.
    assert float((from_images - start).norm()) < 0.5 * float((from_mean - start).norm())


def test_output_rows_train_at_their_own_rate(runtime) -> None:
    from yollava_agent.training.trainer import initial_concept

    assert not runtime.tied_embeddings
    photos, negatives = _photos(3), _photos(4, blue=True)
    start = initial_concept(runtime, "bo", FAST.num_latent_tokens, FAST.seed)
    slow = train_concept(runtime, "bo", photos, negatives, replace(FAST, output_learning_rate=1e-9))
    same = train_concept(runtime, "bo", photos, negatives, FAST)
    assert torch.allclose(slow.output_embeddings, start.output_embeddings, atol=1e-6)
    assert not torch.allclose(same.output_embeddings, start.output_embeddings, atol=1e-3)
    assert not torch.allclose(slow.input_embeddings, start.input_embeddings, atol=1e-3)


def test_recognition_phrasings_are_many_and_distinct() -> None:
    assert len(set(RECOGNITION_QUESTIONS)) == len(RECOGNITION_QUESTIONS) >= 30
    assert all("{c}" in q for q in RECOGNITION_QUESTIONS)


def test_a_run_that_never_says_yes_trains_again_from_the_next_seed(runtime, caplog) -> None:
    """The random tiny model never answers "Yes" to a photo: every attempt collapses, each one
    restarts from the next seed, and the report names the unfit ones."""
    events: list[TrainingEvent] = []
    config = replace(FAST, epochs=2, restarts=2, seed=5)
    with caplog.at_level("WARNING", logger="yollava_agent.training.trainer"):
        concept = train_concept(
            runtime, "bo", _photos(3), _photos(4, blue=True), config, events.append
        )

    stats = concept.training
    assert stats["epoch_positive_accuracies"] == [0.0, 0.0]
    assert stats["best_positive_accuracy"] == 0.0
    assert stats["seed"] == 5 and [u["seed"] for u in stats["unfit"]] == [6, 7]  # all tie
    assert sorted({e.attempt for e in events}) == [1, 2, 3]
    restarts = [r.getMessage() for r in caplog.records if "training again" in r.getMessage()]
    assert restarts == [
        "Concept 'bo' did not learn to say 'yes' to its photos (seed 5: 'yes' to 0% of their "
        "turns); training again from seed 6.",
        "Concept 'bo' did not learn to say 'yes' to its photos (seed 6: 'yes' to 0% of their "
        "turns); training again from seed 7.",
    ]
    assert runtime.injected == {}
    once = replace(config, restarts=0)
    first = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), once)
    assert torch.equal(concept.input_embeddings, first.input_embeddings), "not seed 5's rows"


def test_without_restarts_a_collapsed_run_is_kept_and_trains_once(runtime) -> None:
    events: list[TrainingEvent] = []
    config = replace(FAST, epochs=2)
    concept = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), config, events.append)
    assert concept.training["unfit"] == []
    assert {e.attempt for e in events} == {1}


@pytest.mark.parametrize(
    ("recalls", "accuracies", "min_accuracy", "tried_seeds", "kept_seed", "unfit_seeds"),
    [
        # the first run that says yes is kept; no third attempt
        ([0.0, 0.75, 0.0], [0.8, 0.9, 0.8], 0.0, [0, 1], 1, [0]),
        # all collapse: the best kept epoch wins
        ([0.25, 0.4, 0.1], [0.6, 0.7, 0.5], 0.0, [0, 1, 2], 1, [0, 2]),
        # half the photos' turns is not a collapse
        ([0.5], [0.75], 0.0, [0], 0, []),
        # says yes, but fits its turns too little: trained again, the first run that fits is kept
        ([0.6, 1.0, 1.0], [0.72, 0.99, 1.0], 0.9, [0, 1], 1, [0]),
        # no run fits: the best kept epoch wins
        ([0.6, 0.7, 0.6], [0.72, 0.85, 0.8], 0.9, [0, 1, 2], 1, [0, 2]),
        # without the threshold the same first run is kept as it is
        ([0.6, 1.0], [0.72, 0.99], 0.0, [0], 0, []),
    ],
)
def test_restarts_keep_the_first_run_that_fits(
    runtime,
    monkeypatch,
    recalls: list[float],
    accuracies: list[float],
    min_accuracy: float,
    tried_seeds: list[int],
    kept_seed: int,
    unfit_seeds: list[int],
) -> None:
    """Which attempt is kept, with each attempt's outcome faked (the tiny model never says yes)."""
    tried: list[int] = []

    def attempt(runtime, name, positives, negatives, questions, answers, config, seed, *rest):
        report = rest[1]
        tried.append(seed)
        report.epoch_losses, report.best_epoch = [1.0], 1
        report.epoch_accuracies = [accuracies[seed]]
        report.epoch_positive_accuracies = [recalls[seed]]
        rows = torch.full((17, runtime.base.hidden_size), float(seed))
        return rows, rows

    monkeypatch.setattr("yollava_agent.training.trainer._attempt", attempt)
    config = replace(FAST, restarts=len(recalls) - 1, restart_below_accuracy=min_accuracy)
    concept = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), config)
    assert tried == tried_seeds
    assert float(concept.input_embeddings[0, 0]) == kept_seed
    assert concept.training["seed"] == kept_seed
    assert [u["seed"] for u in concept.training["unfit"]] == unfit_seeds


def test_a_run_that_fits_too_little_says_why_it_trains_again(runtime, monkeypatch, caplog) -> None:
    def attempt(runtime, name, positives, negatives, questions, answers, config, seed, *rest):
        report = rest[1]
        report.epoch_losses, report.best_epoch = [1.0], 1
        report.epoch_accuracies, report.epoch_positive_accuracies = [0.72 + 0.2 * seed], [0.6]
        rows = torch.zeros((17, runtime.base.hidden_size))
        return rows, rows

    monkeypatch.setattr("yollava_agent.training.trainer._attempt", attempt)
    config = replace(FAST, restarts=1, restart_below_accuracy=0.9)
    with caplog.at_level("WARNING", logger="yollava_agent.training.trainer"):
        concept = train_concept(runtime, "bo", _photos(3), _photos(4, blue=True), config)
    assert concept.training["seed"] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "Concept 'bo' did not fit its training turns (seed 0: 72% right, under 90%); training "
        "again from seed 1."
    ]


def test_latent_rows_can_be_kept_between_their_start_and_their_trained_value(runtime) -> None:
    from yollava_agent.training.trainer import initial_concept

    photos, negatives = _photos(3), _photos(4, blue=True)
    trained = train_concept(runtime, "bo", photos, negatives, FAST)
    at_start = train_concept(runtime, "bo", photos, negatives, replace(FAST, latent_interpolation=0.0))
    halfway = train_concept(runtime, "bo", photos, negatives, replace(FAST, latent_interpolation=0.5))
    start = initial_concept(runtime, "bo", FAST.num_latent_tokens, FAST.seed).input_embeddings

    assert at_start.training["latent_interpolation"] == 0.0
    assert halfway.training["latent_interpolation"] == 0.5
    assert torch.allclose(at_start.input_embeddings[1:], start[1:])
    assert torch.allclose(halfway.input_embeddings[1:], (start[1:] + trained.input_embeddings[1:]) / 2)
    assert not torch.allclose(trained.input_embeddings[1:], start[1:], atol=1e-3)
    # The identifier row and the output rows are kept as trained.
    for concept in (at_start, halfway):
        assert torch.equal(concept.input_embeddings[0], trained.input_embeddings[0])
        assert torch.equal(concept.output_embeddings, trained.output_embeddings)


def test_latent_rows_stay_as_trained_when_moved_back_they_no_longer_fit(runtime, monkeypatch) -> None:
    from yollava_agent.training import trainer

    photos, negatives = _photos(3), _photos(4, blue=True)
    trained = train_concept(runtime, "bo", photos, negatives, FAST)
    # The tiny model gets no recognition turn right whatever its rows: fake the two measurements,
    # the trained rows' first ("yes" to every positive turn), then the moved rows' (to none).
    measured = iter([(1.0, 1.0), (0.0, 0.5)])
    monkeypatch.setattr(trainer, "_recognition_fit", lambda *args: next(measured))
    kept = train_concept(runtime, "bo", photos, negatives, replace(FAST, latent_interpolation=0.5))
    assert kept.training["latent_interpolation"] == 1.0
    assert torch.equal(kept.input_embeddings, trained.input_embeddings)


def test_on_a_tied_base_the_interpolated_latent_rows_are_also_its_output_rows() -> None:
    from yollava_agent.training.trainer import _interpolate_latent_rows

    trained = torch.ones(3, 4)
    inputs, outputs = _interpolate_latent_rows(torch.zeros(3, 4), (trained, trained.clone()), 0.25, True)
    assert torch.equal(inputs[0], torch.ones(4))
    assert torch.equal(inputs[1:], torch.full((2, 4), 0.25))
    assert torch.equal(outputs, inputs)


def test_latent_interpolation_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"latent_interpolation must be in \[0, 1\] \(0: the latent rows' start, 1: as trained\), got 1.5"
    ):
        TrainingConfig(latent_interpolation=1.5)
