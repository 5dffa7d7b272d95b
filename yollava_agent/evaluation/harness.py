"""Running the protocol: every chosen method on every concept of a dataset, side by side.

`evaluate` reads every train and test photo once (shrunk to at most `MAX_PHOTO_SIDE` pixels on
the long side: every LLaVA and CLIP processor resizes to a few hundred pixels anyway), embeds
them with CLIP when `instant` is asked for, and then goes concept by concept (a tqdm bar): each
method is prepared for the concept (a description read or generated, tokens trained) and scored
on the concept's test photos, every other concept's test photos and the concept's questions.
Training negatives come from the other concepts' train photos plus `EvalConfig.extra_pool`
folders; test photos never join a pool. The runtime is left with the concepts it had.

Not done: running concepts in parallel, resuming an interrupted run (trained concepts are not
saved), and choosing a model: the caller loads the runtime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from yollava_agent.evaluation.dataset import (
    EvalConcept,
    EvalDataset,
    QAItem,
    load_dataset,
    read_photo,
)
from yollava_agent.evaluation.instant import INSTANT, InstantRecogniser
from yollava_agent.evaluation.methods import (
    DESCRIPTION,
    REFERENCE,
    TRAINED,
    TRAINED_NO_HARD,
    VANILLA,
    NegativeChoice,
    Prepared,
    choose_negatives,
    prepare_description,
    prepare_reference,
    prepare_trained,
    prepare_vanilla,
    score_concept,
)
from yollava_agent.evaluation.metrics import ConceptResult, summarise
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder, NegativePool
from yollava_agent.training.trainer import LabeledImage, TrainingEvent, check_new_concept_name

logger = logging.getLogger(__name__)

METHODS = (VANILLA, DESCRIPTION, REFERENCE, INSTANT, TRAINED, TRAINED_NO_HARD)
"""Every method, in report order."""
MAX_PHOTO_SIDE = 1024


@dataclass
class EvalConfig:
    """Which methods run, and how."""

    methods: Sequence[str] = METHODS
    concepts: Sequence[str] | None = None
    """Which concepts to evaluate (None: all). Every concept of the dataset stays a negative and
    joins the training pool either way, so a subset's numbers are those of the full run."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """How `trained` and `trained-no-hard-negatives` train each concept."""
    clip: ClipConfig = field(default_factory=ClipConfig)
    """The CLIP that mines negatives and runs `instant`."""
    extra_pool: Sequence[str | Path] = ()
    """Folders or files of further negative photos for training (not for the test negatives)."""
    batch_size: int = 8
    """Questions per forward pass while scoring."""
    description_tokens: int = 48
    """Longest description the base writes when the dataset has none."""
    reference_photos: int = 3
    """How many of a concept's train photos the `reference` method shows before a question."""
    train_photos: int | None = None
    """Use only each concept's first this many train photos (None: all), for every method: the
    paper's ablation on the number of photos. Other concepts' train photos stay in the pool."""
    cache_dir: Path | None = None
    """Where pool embeddings are cached (None: the default CLIP cache of the data folder)."""

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = [self.methods]
        methods = list(dict.fromkeys(self.methods))
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            msg = f"Unknown evaluation method {unknown[0]!r}; the methods are {', '.join(METHODS)}."
            raise ValueError(msg)
        if not methods:
            msg = f"Choose at least one evaluation method of {', '.join(METHODS)}."
            raise ValueError(msg)
        self.methods = [m for m in METHODS if m in methods]
        if isinstance(self.concepts, str):
            self.concepts = [self.concepts]
        if self.concepts is not None:
            self.concepts = list(dict.fromkeys(self.concepts))
            if not self.concepts:
                msg = "EvalConfig.concepts must name at least one concept, or be None for all."
                raise ValueError(msg)
        for name in ("batch_size", "description_tokens", "reference_photos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"EvalConfig.{name} must be a positive integer, got {value!r}."
                raise ValueError(msg)
        if self.train_photos is not None and (
            isinstance(self.train_photos, bool)
            or not isinstance(self.train_photos, int)
            or self.train_photos < 1
        ):
            msg = f"EvalConfig.train_photos must be a positive integer or None, got {self.train_photos!r}."
            raise ValueError(msg)
        self.extra_pool = [Path(p) for p in self.extra_pool]

    def as_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "concepts": None if self.concepts is None else list(self.concepts),
            "training": asdict(self.training),
            "clip": {"model_name": self.clip.model_name, "pretrained": self.clip.pretrained},
            "extra_pool": [str(p) for p in self.extra_pool],
            "batch_size": self.batch_size,
            "description_tokens": self.description_tokens,
            "reference_photos": self.reference_photos,
            "train_photos": self.train_photos,
        }


@dataclass
class EvalReport:
    """Every method's results on every concept."""

    dataset: Path
    model: str
    config: EvalConfig
    concepts: list[str]
    results: dict[str, list[ConceptResult]]
    """Per method (in `METHODS` order), one result per concept (in dataset order)."""
    seconds: float = 0.0
    created: str = ""

    def summary(self, method: str) -> dict[str, float | None]:
        """The method's means over concepts."""
        return summarise(self.results[method])

    def result(self, method: str, concept: str) -> ConceptResult:
        return next(r for r in self.results[method] if r.concept == concept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "model": self.model,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "config": self.config.as_dict(),
            "concepts": list(self.concepts),
            "methods": list(self.results),
            "results": {
                method: {
                    "mean": self.summary(method),
                    "concepts": {r.concept: r.as_dict() for r in results},
                }
                for method, results in self.results.items()
            },
        }


class _Photos:
    """The dataset's photos, read once; QA photos read on first use."""

    def __init__(self, dataset: EvalDataset, train_photos: int | None = None) -> None:
        self.train_paths = {c.name: list(c.train[:train_photos]) for c in dataset.concepts}
        self.train = {name: [_read(p) for p in paths] for name, paths in self.train_paths.items()}
        self.test = {c.name: [_read(p) for p in c.test] for c in dataset.concepts}
        self._extra: dict[Path, Image.Image] = {}

    def labeled_train(self, concept: EvalConcept) -> list[LabeledImage]:
        return [
            (str(p), image)
            for p, image in zip(self.train_paths[concept.name], self.train[concept.name], strict=True)
        ]

    def for_question(self, item: QAItem) -> Image.Image:
        assert item.image is not None
        if item.image not in self._extra:
            self._extra[item.image] = _read(item.image)
        return self._extra[item.image]


def _read(path: Path) -> Image.Image:
    image = read_photo(path)
    if max(image.size) > MAX_PHOTO_SIDE:
        image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    return image


def evaluate(
    dataset: EvalDataset | str | Path,
    runtime: LlavaRuntime,
    config: EvalConfig | None = None,
    progress: bool = True,
    on_trained: Callable[[str, ActiveConcept], None] | None = None,
) -> EvalReport:
    """Run `config.methods` on the concepts of `dataset` with the loaded base `runtime`.

    `on_trained(method, concept)` receives each concept a training method made, as it is made
    (the report keeps only numbers).
    """
    started = time.monotonic()
    config = config or EvalConfig()
    if not isinstance(dataset, EvalDataset):
        dataset = load_dataset(dataset)
    chosen = dataset.concepts
    if config.concepts is not None:
        chosen = tuple(dataset.concept(name) for name in config.concepts)
    training = [m for m in config.methods if m in (TRAINED, TRAINED_NO_HARD)]
    if training:
        for concept in chosen:
            check_new_concept_name(runtime, concept.name, config.training.num_latent_tokens)
    photos = _Photos(dataset, config.train_photos)
    embedder = ClipEmbedder(config.clip)
    instant = None
    if INSTANT in config.methods:
        instant = InstantRecogniser(dataset, embedder, lambda name: photos.train[name], photos.test)
    results: dict[str, list[ConceptResult]] = {m: [] for m in config.methods}
    bar = tqdm(chosen, desc="eval", unit="concept", disable=not progress)
    for concept in bar:
        negatives: NegativeChoice | None = None
        if training:
            pool = NegativePool(
                [p for other in dataset.others(concept.name) for p in other.train]
                + list(config.extra_pool),
                embedder,
                cache_dir=config.cache_dir,
            )
            negatives = choose_negatives(photos.train[concept.name], pool, config.training)
        for method in config.methods:
            bar.set_postfix_str(f"{concept.name}: {method}")
            method_started = time.monotonic()
            if method == INSTANT:
                assert instant is not None
                results[method].append(instant.evaluate(concept.name))
                continue
            prepared = _prepare(method, runtime, concept, photos, negatives, config, bar)
            if on_trained is not None and method in (TRAINED, TRAINED_NO_HARD):
                for active in prepared.concepts:
                    on_trained(method, active)
            result = score_concept(
                runtime,
                method,
                dataset,
                concept,
                prepared,
                photos.test,
                photos.for_question,
                config.batch_size,
            )
            result.seconds = time.monotonic() - method_started
            if negatives is not None and method in (TRAINED, TRAINED_NO_HARD):
                result.details["negative_counts"] = dict(negatives.counts)
            results[method].append(result)
    bar.close()
    return EvalReport(
        dataset=dataset.root,
        model=runtime.model_id,
        config=config,
        concepts=[c.name for c in chosen],
        results=results,
        seconds=time.monotonic() - started,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _prepare(
    method: str,
    runtime: LlavaRuntime,
    concept: EvalConcept,
    photos: _Photos,
    negatives: NegativeChoice | None,
    config: EvalConfig,
    bar: tqdm,
) -> Prepared:
    if method == VANILLA:
        return prepare_vanilla(concept)
    if method == DESCRIPTION:
        return prepare_description(
            runtime, concept, photos.train[concept.name][0], config.description_tokens
        )
    if method == REFERENCE:
        return prepare_reference(concept, photos.train[concept.name], config.reference_photos)
    assert negatives is not None

    def show(event: TrainingEvent) -> None:
        if event.step == event.steps_per_epoch:
            bar.set_postfix_str(
                f"{concept.name}: {method} epoch {event.epoch}/{event.epochs} loss {event.loss:.3f}"
            )

    chosen = negatives.hard if method == TRAINED else negatives.random
    return prepare_trained(
        runtime, concept, photos.labeled_train(concept), chosen, config.training, show
    )
