"""Yo'LLaVA training conversations for one concept: recognition turns and text-only attribute turns.

Recognition: each positive photo is asked about in many phrasings (written for this project) and
answered "yes", naming the concept; each negative photo gets a "no" answer. Attributes: ten
questions (one set for objects and animals, one for people) are answered by the base model while
it looks at each positive photo; the same question is then trained about `<bo>` without the
photo, so what the photo showed must move into the latent tokens.

Not here: choosing negatives (`negatives.py`) and the optimisation itself (`trainer.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from PIL import Image

SampleKind = Literal["positive", "negative", "text"]

RECOGNITION_QUESTIONS = (
    "Is {c} in this photo?",
    "Can you see {c} in this image?",
    "Does this picture show {c}?",
    "Is {c} here?",
    "Can you tell me if {c} is in this photo?",
    "Do you spot {c} anywhere in this image?",
    "Is this a photo of {c}?",
    "Does {c} appear in this picture?",
    "Look at this image: is {c} in it?",
    "Would you say {c} is in this photo?",
    "Is {c} visible here?",
    "Am I looking at {c} in this picture?",
    "Could this be {c}?",
    "Is {c} somewhere in this shot?",
    "Do you recognise {c} in this photo?",
    "Is {c} pictured here?",
    "Tell me whether {c} is in this image.",
    "Can you find {c} in this photo?",
    "Is {c} present in this picture?",
    "Does this photo include {c}?",
    "Check this image: do you see {c}?",
    "Is the subject of this photo {c}?",
    "Have you spotted {c} in this picture?",
    "Is {c} in the frame?",
    "Does {c} show up in this image?",
    "Who or what is this? Is it {c}?",
    "Is {c} among the things in this photo?",
    "Please check if {c} is in this picture.",
    "Would you recognise {c} here?",
    "Is there {c} in this image?",
    "Do I see {c} in this photo?",
    "Answer yes or no: is {c} in this image?",
)

POSITIVE_ANSWERS = (
    "Yes, {c} is in this photo.",
    "Yes, I can see {c} in this image.",
    "Yes, this picture shows {c}.",
    "Yes, {c} is here.",
    "Yes, that is {c}.",
)

NEGATIVE_ANSWERS = (
    "No, {c} is not in this photo.",
    "No, I cannot see {c} in this image.",
    "No, this picture does not show {c}.",
    "No, {c} is not here.",
    "No, that is not {c}.",
)

OBJECT_ATTRIBUTE_QUESTIONS = (
    "What colour is {c}?",
    "What shape is {c}?",
    "What is {c} made of?",
    "How big is {c}?",
    "What patterns or markings does {c} have?",
    "What kind of thing is {c}?",
    "What does the surface of {c} look like?",
    "What are the most distinctive features of {c}?",
    "Describe {c} in detail.",
    "What is {c} next to or standing on?",
)

PERSON_ATTRIBUTE_QUESTIONS = (
    "What colour is the hair of {c}?",
    "How long is the hair of {c}?",
    "Does {c} wear glasses?",
    "What is {c} wearing?",
    "What is the facial expression of {c}?",
    "Does {c} have a beard or moustache?",
    "What accessories does {c} wear?",
    "How old does {c} look?",
    "Describe the appearance of {c} in detail.",
    "What is the skin tone of {c}?",
)

SUBJECT_IN_PHOTO = "the main subject of this photo"
"""How attribute questions refer to the concept when the base model answers them from a photo."""


@dataclass(frozen=True)
class Sample:
    """One training conversation: a question (with a photo or not) and the answer to learn."""

    kind: SampleKind
    question: str
    answer: str
    image: Image.Image | None = None
    label: str = ""
    """Where the photo came from (file or pool entry), for error messages and reports."""


def attribute_questions(subject_kind: Literal["object", "person"]) -> tuple[str, ...]:
    """The ten attribute questions for objects and animals, or for people."""
    return PERSON_ATTRIBUTE_QUESTIONS if subject_kind == "person" else OBJECT_ATTRIBUTE_QUESTIONS


def recognition_samples(
    identifier: str,
    positives: list[tuple[str, Image.Image]],
    negatives: list[tuple[str, Image.Image]],
    turns_per_positive: int,
    rng: random.Random,
) -> list[Sample]:
    """Yes-turns for every positive photo (several phrasings each) and a no-turn per negative."""
    samples = []
    for label, image in positives:
        for question in rng.sample(RECOGNITION_QUESTIONS, turns_per_positive):
            answer = rng.choice(POSITIVE_ANSWERS)
            samples.append(
                Sample("positive", question.format(c=identifier), answer.format(c=identifier), image, label)
            )
    for label, image in negatives:
        question, answer = rng.choice(RECOGNITION_QUESTIONS), rng.choice(NEGATIVE_ANSWERS)
        samples.append(
            Sample("negative", question.format(c=identifier), answer.format(c=identifier), image, label)
        )
    return samples


def text_samples(
    identifier: str, questions: tuple[str, ...], answers: list[list[str]]
) -> list[Sample]:
    """Text-only turns: `answers[p][q]` is the base model's answer to question q on photo p."""
    return [
        Sample("text", question.format(c=identifier), answer)
        for per_photo in answers
        for question, answer in zip(questions, per_photo, strict=True)
        if answer.strip()
    ]
