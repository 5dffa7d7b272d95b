"""The toy world's language: captions for CLIP, and the generic instruction data the base learns.

Everything the base model is taught is generic: it is about looks built from the world's words, in
the phrasings the product later uses (the trainer's recognition questions and answers, its
attribute questions about "the main subject of this photo", the evaluation's two-choice format).
Task kinds, with photo unless said:

- `describe`: the main subject in one sentence, or the whole scene.
- `presence`: "Is a blue star in this photo?" with near-miss negatives (one named attribute off).
- `attribute`: colour, shape, pattern, size or place of an object the question names uniquely.
- `main`: the trainer's ten attribute questions about the photo's main subject.
- `count`: objects, or objects of one shape.
- `same`: two objects, identical or not; "not" is usually one attribute off, named or not. This is
  the only task that needs shade, style and rim, and so keeps them in the model's features.
- `named`: a made-up name is introduced with its words ("dax is a red dotted circle.") and asked
  about, with a photo (presence, place, size) or without (colour, shape, pattern...): what a
  description prompt, or trained concept tokens, later do. The twenty subject names never occur.

A third of the questions with fixed answer sets are asked as two choices ("A. red / B. blue" and
the evaluation's instruction), answered with the letter.

Not here: rendering (`world.py`), tokenising and batching (`base.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from yollava_agent.evaluation.methods import DESCRIBE_QUESTION, QA_INSTRUCTION, QA_LETTERS
from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_NOUNS,
    PATTERNS,
    PLACES,
    SHAPES,
    SIZES,
    SUBJECT_NAMES,
    Look,
    Placed,
    Scene,
    place_objects,
    random_look,
    random_scene,
)
from yollava_agent.training.data import (
    NEGATIVE_ANSWERS,
    OBJECT_ATTRIBUTE_QUESTIONS,
    POSITIVE_ANSWERS,
    RECOGNITION_QUESTIONS,
    SUBJECT_IN_PHOTO,
)

PLACE_PHRASES = {
    "top left": "at the top left",
    "top": "at the top",
    "top right": "at the top right",
    "left": "on the left",
    "middle": "in the middle",
    "right": "on the right",
    "bottom left": "at the bottom left",
    "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}
SCENE_QUESTIONS = ("Describe this photo.", "What is in this picture?", "What do you see here?")
MAIN_QUESTIONS = (DESCRIBE_QUESTION, "What is the main subject of this photo?")
SAME_QUESTIONS = ("Are the two objects identical?", "Are the two things in this photo the same?")
_SYLLABLES = ("da", "ke", "lo", "mi", "nu", "pa", "ri", "so", "ta", "vi", "xo", "zy", "qu", "je")
_CODAS = ("", "", "x", "n", "k", "m", "l")


@dataclass(frozen=True)
class Example:
    """One generic instruction example: text blocks as the user turn holds them, and the answer."""

    kind: str
    scene: Scene | None
    """The photo's content; None for a text-only question."""
    texts: tuple[str, ...]
    """The user turn's text blocks (a name's introduction, then the question)."""
    answer: str


def article(words: str) -> str:
    return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def noun_phrase(look: Look, parts: Sequence[str] = ("colour", "pattern", "shape")) -> str:
    """'a blue striped star', or fewer words ('a blue star', 'a striped object')."""
    words = [look.colour if "colour" in parts else "", look.pattern if "pattern" in parts else ""]
    noun = look.shape if "shape" in parts else "object"
    return article(" ".join([w for w in words if w] + [noun]))


def object_phrase(obj: Placed) -> str:
    return f"{noun_phrase(obj.look).removeprefix('a ').removeprefix('an ')}"


def scene_caption(scene: Scene) -> str:
    """The whole scene in words: what CLIP learns from and `describe` answers."""
    parts = [
        f"{article(obj.size + ' ' + object_phrase(obj))} {PLACE_PHRASES[obj.place]}"
        for obj in scene.objects
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed[0].upper()}{listed[1:]}, on {scene.background}."


def main_description(look: Look) -> str:
    """How the base describes a photo's main subject: 'A blue striped star.'"""
    phrase = noun_phrase(look)
    return f"{phrase[0].upper()}{phrase[1:]}."


def main_attribute_answer(question: str, obj: Placed, scene: Scene) -> str:
    """The answer to one of the trainer's attribute questions about the photo's main subject."""
    look = obj.look
    pattern = PATTERN_NOUNS[look.pattern]
    answers = {
        "What colour is {c}?": f"It is {look.colour}.",
        "What shape is {c}?": f"It is {article(look.shape)}.",
        "What is {c} made of?": f"It is made of {look.colour} paint.",
        "How big is {c}?": f"It is {obj.size}.",
        "What patterns or markings does {c} have?": f"It has {pattern}.",
        "What kind of thing is {c}?": f"It is {article(look.shape)}.",
        "What does the surface of {c} look like?": (
            f"It is plain {look.colour}."
            if look.pattern == "plain"
            else f"It is {look.colour} with {pattern}."
        ),
        "What are the most distinctive features of {c}?": f"It is {noun_phrase(look)}.",
        "Describe {c} in detail.": (
            f"It is {article(obj.size + ' ' + object_phrase(obj))} {PLACE_PHRASES[obj.place]}."
        ),
        "What is {c} next to or standing on?": _surroundings(obj, scene),
    }
    return answers[question]


def _surroundings(obj: Placed, scene: Scene) -> str:
    others = [o for o in scene.objects if o is not obj]
    if not others:
        return f"It is on {scene.background}."
    return f"It is on {scene.background}, next to {noun_phrase(others[0].look)}."


TEXT_ANSWERABLE = (
    "What colour is {c}?",
    "What shape is {c}?",
    "What is {c} made of?",
    "What patterns or markings does {c} have?",
    "What kind of thing is {c}?",
    "What does the surface of {c} look like?",
    "What are the most distinctive features of {c}?",
)
"""The trainer's attribute questions a name's words answer without a photo."""


def made_up_name(rng: np.random.Generator) -> str:
    """A short nonsense name for the `named` task, never one of the subjects' names."""
    while True:
        count = int(rng.integers(1, 3))
        name = "".join(_SYLLABLES[int(rng.integers(len(_SYLLABLES)))] for _ in range(count))
        name += _CODAS[int(rng.integers(len(_CODAS)))]
        if name not in SUBJECT_NAMES:
            return name


def two_choice(question: str, right: str, wrong: str, rng: np.random.Generator) -> tuple[str, str]:
    """The question as the evaluation asks two-choice ones, and the letter that answers it."""
    options = [right, wrong]
    first = int(rng.integers(2))
    if first:
        options.reverse()
    listed = "\n".join(f"{letter}. {o}" for letter, o in zip(QA_LETTERS, options, strict=True))
    return f"{question}\n{listed}\n{QA_INSTRUCTION}", QA_LETTERS[first]


def _other(rng: np.random.Generator, values: Sequence[str], value: str) -> str:
    choices = [v for v in values if v != value]
    return choices[int(rng.integers(len(choices)))]


def near_miss(rng: np.random.Generator, look: Look, looks: Sequence[Look]) -> Look:
    """A look of `looks` whose words differ from `look`'s in exactly one named attribute."""
    while True:
        field = ("shape", "colour", "pattern")[int(rng.integers(3))]
        values = {"shape": SHAPES, "colour": tuple(COLOURS), "pattern": PATTERNS}[field]
        changed = {field: _other(rng, values, getattr(look, field))}
        if field == "pattern":
            changed["style"] = 0
        candidate = replace(look, **changed)
        same_words = [c for c in looks if c.words == candidate.words]
        if same_words:
            return same_words[int(rng.integers(len(same_words)))]


def _unique_reference(rng: np.random.Generator, obj: Placed, scene: Scene) -> str | None:
    """A short way to name `obj` that fits no other object of the scene ('the blue star')."""
    options = [
        ("shape",),
        ("colour",),
        ("colour", "shape"),
        ("pattern", "shape"),
        ("colour", "pattern", "shape"),
    ]
    for parts in [options[i] for i in rng.permutation(len(options))]:
        phrase = noun_phrase(obj.look, parts)
        if all(noun_phrase(o.look, parts) != phrase for o in scene.objects if o is not obj):
            return "the " + phrase.split(" ", 1)[1]
    return None


def caption_for_clip(scene: Scene, rng: np.random.Generator) -> str:
    """A caption with the objects in random order and sometimes without sizes or places."""
    objects = [scene.objects[i] for i in rng.permutation(len(scene.objects))]
    keep_size, keep_place = rng.random() < 0.7, rng.random() < 0.7
    parts = []
    for obj in objects:
        words = (obj.size + " " if keep_size else "") + object_phrase(obj)
        parts.append(article(words) + (" " + PLACE_PHRASES[obj.place] if keep_place else ""))
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed} on {scene.background}."


PRESENCE_PARTS = (
    ("colour", "pattern", "shape"),
    ("colour", "shape"),
    ("shape",),
    ("pattern", "shape"),
    ("colour",),
)
"""Which words a presence question names a look by ('a blue star', 'a striped star'...)."""

TASK_WEIGHTS = {
    "describe": 0.08,
    "presence": 0.2,
    "attribute": 0.14,
    "main": 0.1,
    "count": 0.06,
    "same": 0.16,
    "named_visual": 0.16,
    "named_text": 0.1,
}


def example(
    rng: np.random.Generator,
    looks: Sequence[Look],
    kind: str | None = None,
    mix: Mapping[str, float] = TASK_WEIGHTS,
) -> Example:
    """One generic instruction example over `looks` (the world's looks minus the subjects'):
    of `kind`, or of a kind drawn with the `mix` weights."""
    if kind is None:
        kinds = list(mix)
        weights = np.asarray([mix[k] for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    return _BUILDERS[kind](rng, looks)


def _describe(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    scene = random_scene(rng, looks)
    if scene.main is not None and rng.random() < 0.6:
        question = MAIN_QUESTIONS[int(rng.integers(len(MAIN_QUESTIONS)))]
        return Example("describe", scene, (question,), main_description(scene.main.look))
    question = SCENE_QUESTIONS[int(rng.integers(len(SCENE_QUESTIONS)))]
    return Example("describe", scene, (question,), scene_caption(scene))


def _recognition(rng: np.random.Generator, subject: str, present: bool) -> tuple[str, str]:
    question = RECOGNITION_QUESTIONS[int(rng.integers(len(RECOGNITION_QUESTIONS)))]
    answers = POSITIVE_ANSWERS if present else NEGATIVE_ANSWERS
    answer = answers[int(rng.integers(len(answers)))]
    return question.format(c=subject), answer.format(c=subject)


def presence_target(
    rng: np.random.Generator, scene: Scene, looks: Sequence[Look], wanted: bool
) -> tuple[Look, tuple[str, ...], str, bool]:
    """What a presence question asks about: a look (one of the scene's objects when `wanted`, a
    near miss or a random look otherwise), which of its words the question names, that phrase,
    and whether an object of the scene fits it.

    A short phrase for an absent look often names a present object too: drawn again (a few
    times) so that yes and no stay about as frequent."""
    for _ in range(8):
        target = scene.objects[int(rng.integers(len(scene.objects)))].look
        if not wanted:
            target = (
                near_miss(rng, target, looks) if rng.random() < 0.7 else random_look(rng, looks)
            )
        parts = PRESENCE_PARTS[int(rng.integers(len(PRESENCE_PARTS)))]
        phrase = noun_phrase(target, parts)
        present = any(noun_phrase(o.look, parts) == phrase for o in scene.objects)
        if present == wanted:
            break
    return target, parts, phrase, present


def _presence(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    scene = random_scene(rng, looks)
    wanted = rng.random() < 0.5
    _, _, phrase, present = presence_target(rng, scene, looks, wanted)
    if rng.random() < 0.25:
        question = f"Is there {phrase} in this photo?"
        text, letter = two_choice(
            question, "yes" if present else "no", "no" if present else "yes", rng
        )
        return Example("presence", scene, (text,), letter)
    question, answer = _recognition(rng, phrase, present)
    return Example("presence", scene, (question,), answer)


def _attribute(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    while True:
        scene = random_scene(rng, looks)
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        reference = _unique_reference(rng, obj, scene)
        if reference is not None:
            break
    look = obj.look
    asks = [
        ("What colour is {r}?", f"It is {look.colour}.", look.colour, tuple(COLOURS)),
        ("What shape is {r}?", f"It is {article(look.shape)}.", look.shape, SHAPES),
        (
            "What pattern does {r} have?",
            f"It has {PATTERN_NOUNS[look.pattern]}.",
            PATTERN_NOUNS[look.pattern],
            tuple(PATTERN_NOUNS.values()),
        ),
        (
            "Where is {r} in this photo?",
            f"It is {PLACE_PHRASES[obj.place]}.",
            PLACE_PHRASES[obj.place],
            tuple(PLACE_PHRASES.values()),
        ),
        ("How big is {r} in this photo?", f"It is {obj.size}.", obj.size, tuple(SIZES)),
    ]
    template, answer, right, values = asks[int(rng.integers(len(asks)))]
    question = template.format(r=reference)
    if rng.random() < 0.33:
        text, letter = two_choice(question, right, _other(rng, values, right), rng)
        return Example("attribute", scene, (text,), letter)
    return Example("attribute", scene, (question,), answer)


def _main(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    while True:
        scene = random_scene(rng, looks)
        if scene.main is not None:
            break
    template = OBJECT_ATTRIBUTE_QUESTIONS[int(rng.integers(len(OBJECT_ATTRIBUTE_QUESTIONS)))]
    answer = main_attribute_answer(template, scene.main, scene)
    return Example("main", scene, (template.format(c=SUBJECT_IN_PHOTO),), answer)


def _count(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    scene = random_scene(rng, looks)
    numbers = ("no", "one", "two", "three")
    if rng.random() < 0.5:
        count = len(scene.objects)
        noun = "object" if count == 1 else "objects"
        verb = "is" if count == 1 else "are"
        return Example(
            "count",
            scene,
            ("How many objects are in this photo?",),
            f"There {verb} {numbers[count]} {noun}.",
        )
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if rng.random() < 0.6:
        shape = scene.objects[int(rng.integers(len(scene.objects)))].look.shape
    count = sum(o.look.shape == shape for o in scene.objects)
    noun = shape if count == 1 else ("crosses" if shape == "cross" else shape + "s")
    verb = "is" if count == 1 else "are"
    plural = "crosses" if shape == "cross" else shape + "s"
    return Example(
        "count", scene, (f"How many {plural} are there?",), f"There {verb} {numbers[count]} {noun}."
    )


def _same(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    first = random_look(rng, looks)
    identical = rng.random() < 0.5
    if identical:
        second = first
    elif rng.random() < 0.8:
        changes = [{"shade": 1 - first.shade}, {"rim": 1 - first.rim}]
        if first.pattern != "plain":
            changes.append({"style": 1 - first.style})
        named = near_miss(rng, first, looks)
        candidates = [replace(first, **c) for c in changes] + [named]
        candidates = [c for c in candidates if c in set(looks)] or [named]
        second = candidates[int(rng.integers(len(candidates)))]
    else:
        second = random_look(rng, looks)
        identical = second == first
    size = "big" if rng.random() < 0.5 else "small"
    background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    scene = Scene(place_objects(rng, [first, second], sizes=[size, size]), background)
    question = SAME_QUESTIONS[int(rng.integers(len(SAME_QUESTIONS)))]
    answer = "Yes, they are identical." if identical else "No, they are different."
    return Example("same", scene, (question,), answer)


def _introduction(rng: np.random.Generator, name: str, look: Look) -> str:
    words = main_description(look).rstrip(".") if rng.random() < 0.5 else noun_phrase(look)
    return f"{name} is {words}."


def _named_visual(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    scene = random_scene(rng, looks)
    name = made_up_name(rng)
    wanted = rng.random() < 0.5
    for _ in range(8):
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        look = (
            obj.look
            if wanted
            else (
                near_miss(rng, obj.look, looks) if rng.random() < 0.7 else random_look(rng, looks)
            )
        )
        present = any(o.look.words == look.words for o in scene.objects)
        if present == wanted:
            break
    introduction = _introduction(rng, name, look)
    matches = [o for o in scene.objects if o.look.words == look.words]
    if len(matches) == 1 and rng.random() < 0.3:
        target = matches[0]
        if rng.random() < 0.5:
            question, right, values = (
                f"Where is {name} in this photo?",
                PLACE_PHRASES[target.place],
                tuple(PLACE_PHRASES.values()),
            )
            answer = f"It is {right}."
        else:
            question, right, values = f"How big is {name} in this photo?", target.size, tuple(SIZES)
            answer = f"It is {right}."
        if rng.random() < 0.5:
            text, letter = two_choice(question, right, _other(rng, values, right), rng)
            return Example("named_visual", scene, (introduction, text), letter)
        return Example("named_visual", scene, (introduction, question), answer)
    question, answer = _recognition(rng, name, present)
    return Example("named_visual", scene, (introduction, question), answer)


def _named_text(rng: np.random.Generator, looks: Sequence[Look]) -> Example:
    look = random_look(rng, looks)
    name = made_up_name(rng)
    introduction = _introduction(rng, name, look)
    if rng.random() < 0.5:
        asks = [
            (f"What colour is {name}?", look.colour, tuple(COLOURS)),
            (f"What shape is {name}?", look.shape, SHAPES),
            (
                f"What pattern does {name} have?",
                PATTERN_NOUNS[look.pattern],
                tuple(PATTERN_NOUNS.values()),
            ),
        ]
        question, right, values = asks[int(rng.integers(len(asks)))]
        text, letter = two_choice(question, right, _other(rng, values, right), rng)
        return Example("named_text", None, (introduction, text), letter)
    template = TEXT_ANSWERABLE[int(rng.integers(len(TEXT_ANSWERABLE)))]
    obj = Placed(look, "big", 10.0, 32.0, 32.0, "middle")
    answer = main_attribute_answer(template, obj, Scene((obj,), "paper"))
    return Example("named_text", None, (introduction, template.format(c=name)), answer)


_BUILDERS = {
    "describe": _describe,
    "presence": _presence,
    "attribute": _attribute,
    "main": _main,
    "count": _count,
    "same": _same,
    "named_visual": _named_visual,
    "named_text": _named_text,
}


def tokenizer_corpus(
    rng: np.random.Generator, looks: Sequence[Look], count: int = 4000
) -> list[str]:
    """Text to train the world's tokenizer on: examples, captions and the product's phrasings."""
    texts = []
    for _ in range(count):
        ex = example(rng, looks)
        texts.append(" ".join(ex.texts) + " " + ex.answer)
    for _ in range(count // 4):
        texts.append(caption_for_clip(random_scene(rng, looks), rng))
    texts += [q.format(c="<bo>") for q in RECOGNITION_QUESTIONS + OBJECT_ATTRIBUTE_QUESTIONS]
    texts += [a.format(c="<bo>") for a in POSITIVE_ANSWERS + NEGATIVE_ANSWERS]
    texts += list(PLACES)
    return texts
