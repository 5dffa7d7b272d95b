"""The language-model methods compared, and how one of them is scored on one concept.

- `vanilla`: the base as it is; questions name the concept by its plain name ("Is bo in this
  photo?") and nothing tells the model who bo is (the paper's Vanilla LLaVA).
- `description`: the base with a description in the prompt ("bo is a red mug with a white
  handle."), placed as the chat model places an untrained concept. The dataset's
  `description.txt` when there is one (the paper's human-written description), else the base's
  own one-sentence description of the concept's first train photo.
- `reference`: the base is shown k of the concept's train photos before the question's photo
  ("bo is in the first 3 photos. Is bo in the last photo?"): the paper's image-prompting
  baseline (GPT-4V with 5 photos), which works on any LLaVA that reads several photos in a turn.
  Its prompt tokens are the k photos' image tokens and the sentence. Text questions show the k
  photos alone ("bo is in these photos. What colour is bo?"); visual ones ask about "the last
  photo" where the dataset's question says "this photo".
- `trained`: Yo'LLaVA. `train_concept` on the train photos, with negatives mined by CLIP from the
  other concepts' train photos plus any extra pool: the nearest ones (hard) and random others
  (easy), as `TrainingConfig` asks. Questions name the concept `<bo>` after its concept prompt.
- `trained-no-hard-negatives`: the paper's ablation. The same training with the same number of
  negatives, all drawn at random from the same pool.

Scoring: recognition asks "Is {c} in this photo?" of the concept's test photos (positives) and of
every other concept's test photos (negatives), and reads yes/no from the first distinguishing
answer token (`scoring.py`); two-choice QA shows the options as "A." and "B." and reads the
letter the same way. Not done: free-text generation, and several phrasings per photo (the paper's
protocol asks one question per photo).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from yollava_agent.concept import Concept, identifier_token
from yollava_agent.evaluation.dataset import EvalConcept, EvalDataset, QAItem
from yollava_agent.evaluation.metrics import ConceptResult, qa_accuracy, recognition_accuracy
from yollava_agent.evaluation.scoring import Query, choose, concept_prompt_tokens
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import NEGATIVE_ANSWERS, POSITIVE_ANSWERS, RECOGNITION_QUESTIONS
from yollava_agent.training.negatives import NegativePool, mine_negatives
from yollava_agent.training.trainer import (
    LabeledImage,
    TrainingEvent,
    describe_photos,
    train_concept,
)

logger = logging.getLogger(__name__)

VANILLA = "vanilla"
DESCRIPTION = "description"
REFERENCE = "reference"
TRAINED = "trained"
TRAINED_NO_HARD = "trained-no-hard-negatives"
LLM_METHODS = (VANILLA, DESCRIPTION, REFERENCE, TRAINED, TRAINED_NO_HARD)

RECOGNITION_QUESTION = RECOGNITION_QUESTIONS[0]
"""'Is {c} in this photo?', the first phrasing training uses."""
YES_ANSWER = POSITIVE_ANSWERS[0]
NO_ANSWER = NEGATIVE_ANSWERS[0]
QA_INSTRUCTION = "Answer with the option's letter from the given choices directly."
"""LLaVA-1.5's instruction for multiple-choice questions."""
QA_LETTERS = ("A", "B")
DESCRIBE_QUESTION = "Describe the main subject of this photo in one sentence."
REFERENCE_QUESTION = "Is {c} in the last photo?"
"""The `reference` method's recognition question, after the reference photos."""


def reference_intro(subject: str, photos: int, query_photo: bool = True) -> str:
    """How the `reference` method says which photos show the concept: "bo is in the first 3
    photos." before a question's photo, "bo is in these photos." when there is none."""
    if not query_photo:
        return f"{subject} is in {'this photo' if photos == 1 else 'these photos'}."
    if photos == 1:
        return f"{subject} is in the first photo."
    return f"{subject} is in the first {photos} photos."


@dataclass
class Prepared:
    """What a method puts in front of the model for one concept."""

    concepts: list[ActiveConcept]
    """Whose prompts go in every question (none for vanilla)."""
    subject: str
    """How questions name the concept: `bo`, or `<bo>` once trained."""
    details: dict[str, Any] = field(default_factory=dict)
    reference_photos: list[Image.Image] = field(default_factory=list)
    """Photos shown before every question (the `reference` method's train photos)."""


def qa_text(item: QAItem, name: str, subject: str) -> str:
    """A two-choice question as the model sees it, the concept named as `subject`."""
    question = item.question.replace(identifier_token(name), subject)
    options = "\n".join(
        f"{letter}. {option}" for letter, option in zip(QA_LETTERS, item.options, strict=True)
    )
    return f"{question}\n{options}\n{QA_INSTRUCTION}"


def describe_photo(runtime: LlavaRuntime, photo: Image.Image, max_tokens: int) -> str:
    """The base model's own one-sentence description of a photo's main subject (greedy)."""
    with runtime.lock:
        previous = list(runtime.injected.values())
        try:
            runtime.set_concepts([])
            (answers,) = describe_photos(runtime, [("photo", photo)], [DESCRIBE_QUESTION], max_tokens)
        finally:
            runtime.set_concepts(previous)
    return " ".join(answers[0].split())


def prepare_vanilla(concept: EvalConcept) -> Prepared:
    return Prepared(concepts=[], subject=concept.name)


def prepare_description(
    runtime: LlavaRuntime, concept: EvalConcept, first_train_photo: Image.Image, max_tokens: int
) -> Prepared:
    if concept.description is not None:
        text, source = concept.description, "dataset"
    else:
        text, source = describe_photo(runtime, first_train_photo, max_tokens), "generated"
    active = ActiveConcept(name=concept.name, description=text)
    return Prepared([active], concept.name, {"description": text, "description_source": source})


def prepare_reference(concept: EvalConcept, train_photos: Sequence[Image.Image], k: int) -> Prepared:
    """The concept's first `k` train photos, shown before every question."""
    shown = list(train_photos[:k])
    return Prepared([], concept.name, {"reference_photos": len(shown)}, shown)


@dataclass
class NegativeChoice:
    """The negatives one concept trains on, with and without hard ones (same count)."""

    hard: list[LabeledImage]
    """Hard then easy, as `TrainingConfig` asks (what `trained` uses)."""
    random: list[LabeledImage]
    """As many, all drawn at random (what `trained-no-hard-negatives` uses)."""
    counts: dict[str, int]


def choose_negatives(
    positives: Sequence[Image.Image], pool: NegativePool, config: TrainingConfig
) -> NegativeChoice:
    """Mine hard + easy negatives, and the same number of random ones, from `pool`."""
    mined = mine_negatives(
        list(positives),
        pool,
        num_hard=config.num_hard_negatives,
        num_easy=config.num_easy_negatives,
        near_duplicate_threshold=config.near_duplicate_threshold,
        seed=config.seed,
    )
    total = len(mined.hard) + len(mined.easy)
    drawn = mine_negatives(
        list(positives),
        pool,
        num_hard=0,
        num_easy=total,
        near_duplicate_threshold=config.near_duplicate_threshold,
        seed=config.seed,
    )

    def labeled(indices: list[int]) -> list[LabeledImage]:
        return [(pool.label(i), pool.image(i)) for i in indices]

    return NegativeChoice(
        hard=labeled([*mined.hard, *mined.easy]),
        random=labeled(drawn.easy),
        counts={
            "pool": len(pool),
            "hard": len(mined.hard),
            "easy": len(mined.easy),
            "random": len(drawn.easy),
        },
    )


def prepare_trained(
    runtime: LlavaRuntime,
    concept: EvalConcept,
    positives: Sequence[LabeledImage],
    negatives: Sequence[LabeledImage],
    config: TrainingConfig,
    on_event: Callable[[TrainingEvent], None] | None = None,
) -> Prepared:
    trained: Concept = train_concept(runtime, concept.name, positives, negatives, config, on_event)
    stats = trained.training
    details = {
        "negatives": len(negatives),
        "best_epoch": stats.get("best_epoch"),
        "train_accuracy": stats.get("best_accuracy"),
        "train_seconds": stats.get("seconds"),
        "restarts": len(stats.get("unfit", [])),
    }
    return Prepared([ActiveConcept.from_concept(trained)], identifier_token(concept.name), details)


def _qa_with_references(
    text: str, subject: str, references: Sequence[Image.Image], query_photo: bool
) -> str:
    """A QA text as the `reference` method asks it: after the sentence that says which photos
    show the concept, and about "the last photo" when the question has a photo of its own."""
    if not references:
        return text
    if query_photo:
        text = text.replace("this photo", "the last photo")
    return f"{reference_intro(subject, len(references), query_photo)} {text}"


def reference_prompt_tokens(
    runtime: LlavaRuntime, intro: str, references: Sequence[Image.Image]
) -> int:
    """Tokens the `reference` method spends on the concept: its photos' image tokens (as the
    processor expands them) and its sentence."""
    processor = runtime.processor
    image_token = processor.image_token
    expanded = processor(text=image_token * len(references), images=list(references), return_tensors="pt")
    image_id = runtime.tokenizer.convert_tokens_to_ids(image_token)
    photos = int((expanded["input_ids"] == image_id).sum())
    return photos + len(runtime.tokenizer(intro, add_special_tokens=False)["input_ids"])


def score_concept(
    runtime: LlavaRuntime,
    method: str,
    dataset: EvalDataset,
    concept: EvalConcept,
    prepared: Prepared,
    test_photos: Mapping[str, Sequence[Image.Image]],
    qa_photo: Callable[[QAItem], Image.Image],
    batch_size: int = 8,
) -> ConceptResult:
    """Recognition and QA of one prepared method on one concept (training time not included)."""
    started = time.monotonic()
    subject = prepared.subject
    references = tuple(prepared.reference_photos)
    question = RECOGNITION_QUESTION.format(c=subject)
    if references:
        question = f"{reference_intro(subject, len(references))} {REFERENCE_QUESTION.format(c=subject)}"
    answers = [YES_ANSWER.format(c=subject), NO_ANSWER.format(c=subject)]
    own = [Query(question, photo, references) for photo in test_photos[concept.name]]
    others = [
        Query(question, p, references)
        for c in dataset.others(concept.name)
        for p in test_photos[c.name]
    ]
    visual, text = concept.visual_questions, concept.text_questions
    qa = [
        Query(_qa_with_references(qa_text(q, concept.name, subject), subject, references, True), qa_photo(q), references)
        for q in visual
    ] + [
        Query(_qa_with_references(qa_text(q, concept.name, subject), subject, references, False), None, references)
        for q in text
    ]
    with runtime.lock:
        previous = list(runtime.injected.values())
        try:
            said = choose(runtime, own + others, prepared.concepts, answers, batch_size)
            picked = choose(runtime, qa, prepared.concepts, QA_LETTERS, batch_size) if qa else []
            tokens = concept_prompt_tokens(runtime, prepared.concepts)
            if references:
                tokens = reference_prompt_tokens(runtime, reference_intro(subject, len(references)), references)
        finally:
            runtime.set_concepts(previous)
    yes = [choice == 0 for choice in said]
    own_yes, others_yes = yes[: len(own)], yes[len(own) :]
    positive, negative, _ = recognition_accuracy(own_yes, others_yes)
    # Which photos it got wrong, named as the dataset names them, so errors can be looked at.
    negative_photos = [
        f"{other.name}/{path.name}" for other in dataset.others(concept.name) for path in other.test
    ]
    wrong = {
        "said_no_to": [p.name for p, y in zip(concept.test, own_yes, strict=True) if not y],
        "said_yes_to": [p for p, y in zip(negative_photos, others_yes, strict=True) if y],
        "missed_questions": [
            q.where for q, choice in zip([*visual, *text], picked, strict=True) if choice != q.answer
        ],
    }
    return ConceptResult(
        method=method,
        concept=concept.name,
        positive=positive,
        negative=negative,
        visual_qa=qa_accuracy(picked[: len(visual)], [q.answer for q in visual]),
        text_qa=qa_accuracy(picked[len(visual) :], [q.answer for q in text]),
        prompt_tokens=tokens,
        counts={
            "positives": len(own),
            "negatives": len(others),
            "visual_questions": len(visual),
            "text_questions": len(text),
        },
        seconds=time.monotonic() - started,
        details=dict(prepared.details) | wrong,
    )
