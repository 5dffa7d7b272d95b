"""The second pretraining stage: what the product asks of the base beyond matching.

`python -m yollava_agent.toyworld.skills OUT --base SYMBOLIC` continues a symbolic base
(`symbolic.py`, which matches words and photos) on symbolic photos whose object slots also carry
the object's place (`slots.PLACE_TOKENS`, added to the vocabulary here), with every symbolic task
plus the ones the benchmark and the product need (`SKILLS`), in the product's phrasings:

- `attribute`: "What colour is the star?" (colour, shape, pattern, size, place) of an object the
  question names uniquely: the generic attribute questions.
- `count`: "How many objects are in this photo?", "How many stars are there?".
- `describe`: the evaluation's describe question about the main subject ("A blue striped star."):
  what the `description` method prompts with when a dataset has no description.
- `locate`: "dax is <photo>." or "dax is a blue star." then "Where is dax in this photo?" / "How
  big is dax in this photo?", mostly as two choices: a concept's visual questions.
- `photos`: k = 1-3 single-object photos of dax, then the query photo, all first (llava-1.5's
  template puts every photo before the text): "dax is in the first 3 photos. Is dax in the last
  photo?", "Where is dax in the last photo?", or, without a query photo, "dax is in these
  photos. What colour is dax?": the `reference` method, the paper's image-prompting baseline.
- `where`: "Where is the blue star in this photo?" answered in words only ("It is at the top
  left."). Weight 0 in the default mix (as the bases before the `where` curriculum trained): a
  curriculum stage gives it a share with `--task-weight where=W`.
- `where_choice`: the same question as the evaluation's two choices ("A. at the top right / B.
  at the top left"), the form the benchmark's visual QA asks: a stage-2 model that answered
  corners in words every time on one-object slots chose between two places' letters at 0.86
  (measured; `benchmarks/toyworld_place_choices.py` splits it by how the options differ).
  Weight 0 in the default mix, as `where`.

The two supervised heads of `symbolic.py` keep their roles: gather (what is asked: words, or the
reference photos' object slots) and point (the object asked about, or the sink when nothing
matches). Two-choice questions (the evaluation's QA) get two more (`SkillEncoder` writes their
targets): the choose head (`symbolic.CHOOSE_LAYER`) attends from the answer position to the right
option's words, and the letter head (`symbolic.LETTER_LAYER`) from each option word to its
letter, so that the chosen words bring their letter. Before either, the stage's tokenizer stops
merging an option's word with the newline after it (`separate_words_from_newlines`). With
`--count-shares` a count turn's pointer target gives the sink and each counted object an even
share (`count_pointer_target`), so that what the pointer reads carries the count. With
`--choose-own-words` the choose head's target is only the right option's words that the other
option does not have (`own_option_words`). `with_unasked_statements` puts statements about
names a turn never asks about before its question, where a chat puts active concepts' prompts
(`assembly.py --statement-share` trains with them on photos; this stage does not).
`assembly.py` trains these tasks on rendered photos; here they train on slots. Training,
held-out accuracy and export follow `symbolic.py` (same losses, `checkpoint.pt` / `log.jsonl`,
a restarted run resumes); `--export FOLDER` writes a half-precision Llama with `training.json`.
`--task-weight TASK=WEIGHT` changes a task's share of the mix, and `--base` may be a stage-2
export: its place tokens and choose head are kept and its report goes under `continued_from`,
so the stage can run as a curriculum (places first, then every task).

Chosen not to: a place head or a position code per patch (the place token names the object's
grid cell; patches carry no position of their own), counting beyond three objects, free-form
scene captions (the describe question is about the main subject only), and reference photos with
distractors in the `photos` task (which object of a cluttered reference is dax is a question of
its own).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers import AddedToken, AutoTokenizer, LlamaForCausalLM

from yollava_agent.evaluation.methods import DESCRIBE_QUESTION
from yollava_agent.toyworld import symbolic
from yollava_agent.toyworld.folders import saved_folder
from yollava_agent.toyworld.language import (
    PLACE_PHRASES,
    article,
    main_description,
    noun_phrase,
    two_choice,
)
from yollava_agent.toyworld.slots import PLACE_TOKENS, slot_owners, slot_scale
from yollava_agent.toyworld.symbolic import (
    CHOOSE_LAYER,
    IMAGE_TOKEN,
    Encoded,
    Encoder,
    Turn,
    chat,
    collate,
    forward,
    made_up_name,
    single_object_scene,
)
from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_NOUNS,
    PLACES,
    SHAPES,
    SIZES,
    Look,
    Scene,
    generic_looks,
    place_objects,
    random_look,
    random_scene,
)

logger = logging.getLogger(__name__)

SKILLS = ("attribute", "count", "describe", "locate", "photos", "where", "where_choice")
TASKS = (*symbolic.TASKS, *SKILLS)
GATE_TASKS = ("presence", "attribute", "count", "same", "reference", "named")
"""The generic visual tasks the photo gate asks >= 0.90 of (named: the description method)."""
COPY_TASK = "named_text"
"""Copying a name's words from the text (gate 0.95)."""
MAIN_QUESTIONS = (DESCRIBE_QUESTION, "What is the main subject of this photo?")
NUMBERS = ("no", "one", "two", "three")
LAST_PHOTO_QUESTIONS = (
    "Is {c} in the last photo?",
    "Does the last photo show {c}?",
    "Can you see {c} in the last photo?",
)
REFERENCE_QUESTION = LAST_PHOTO_QUESTIONS[0]
"""What the `reference` method asks after its reference photos."""


@dataclass(frozen=True)
class SkillTurn(Turn):
    """A turn whose gather target may be several photos' object slots (k reference photos)."""

    asked_photos: tuple[int, ...] = ()


def reference_text(name: str, photos: int) -> str:
    """How the `reference` method says which photos show the subject: "bo is in the first 3
    photos." (the photos come first, the query photo last)."""
    if photos == 1:
        return f"{name} is in the first photo."
    return f"{name} is in the first {photos} photos."


class SkillEncoder(Encoder):
    """`symbolic.Encoder` with the choose head's targets, plus gather targets on every photo of
    `SkillTurn.asked_photos`; with `count_shares`, a count turn's pointer target is
    `count_pointer_target`'s (else the counted objects' slots evenly, or the sink); with
    `choose_own_words`, the choose head's target is `own_option_words` (else every word of the
    right option)."""

    def __init__(
        self, tokenizer: object, count_shares: bool = False, choose_own_words: bool = False
    ) -> None:
        super().__init__(tokenizer, choose=True)
        self.count_shares = count_shares
        self.choose_own_words = choose_own_words

    def encode(self, item: Turn) -> Encoded:
        encoded = super().encode(item)
        asked = getattr(item, "asked_photos", ())
        if asked:
            starts = photo_starts(encoded, self.image_id)
            objects = encoded.components[:, 1] >= 0
            for photo in asked:
                start = starts[photo]
                encoded.gather += [p for p in range(start, start + 16) if objects[p]]
        if self.count_shares and item.kind == "count":
            encoded.point, encoded.point_weights = count_pointer_target(
                item.photos[0], item.target_objects, photo_starts(encoded, self.image_id)[0]
            )
        if self.choose_own_words and encoded.choose:
            encoded.choose = own_option_words(encoded)
        return encoded


def own_option_words(encoded: Encoded) -> list[int]:
    """The positions of the right option's words that the other option does not have ("right"
    of "at the top right" against "at the top left"), or all its words when it has none ("at
    the top" against "at the top right"). Words both options share are written alike and read
    alike, so a head told to attend to them in the right option only cannot: with every word
    of the right option as its target, a stage-2 model chose right on 0.70 of place questions
    whose options differ in one word each, and on 0.99-1.00 of those that differ in two or more
    (`where_choice`, 1,000 turns on exact slots; measured)."""
    right = encoded.choose
    letter = encoded.letters[right[0]]
    other = {encoded.input_ids[p] for p, at in encoded.letters.items() if at != letter}
    own = [p for p in right if encoded.input_ids[p] not in other]
    return own or right


def count_pointer_target(
    scene: Scene, counted: Sequence[int], start: int
) -> tuple[list[int], list[float]]:
    """The pointer's target for "how many" about `counted` objects of `scene` (its slots from
    position `start`): the sink (position 0) and each counted object 1/(k+1) of the attention,
    an object's share spread over the slots it owns. What the pointer reads is then the sink's
    row times 1/(k+1) plus the objects': k is in it. An even split over the counted slots (the
    default) reads the same average for one square as for two: the `where` curriculum's language
    model answered "There is two squares." to all 38 two-of-a-shape turns of 600 on exact slots
    (`benchmarks/toyworld_count_slots.py`; measured)."""
    owners = slot_owners(scene)
    share = 1.0 / (len(counted) + 1)
    positions, weights = [0], [share]
    for index in counted:
        slots = np.flatnonzero(owners == index)
        positions += [start + int(s) for s in slots]
        weights += [share / len(slots)] * len(slots)
    return positions, weights


def photo_starts(encoded: Encoded, image_id: int) -> list[int]:
    """Position of each photo's first image token, in order."""
    ids = encoded.input_ids
    return [
        i for i, token in enumerate(ids) if token == image_id and (i == 0 or ids[i - 1] != image_id)
    ]


def _unique_phrase(rng: np.random.Generator, index: int, scene: Scene) -> str | None:
    """A short way to name object `index` that fits no other object ("the blue star")."""
    options = [
        ("shape",),
        ("colour", "shape"),
        ("pattern", "shape"),
        ("colour", "pattern", "shape"),
    ]
    look = scene.objects[index].look
    for parts in [options[i] for i in rng.permutation(len(options))]:
        phrase = noun_phrase(look, parts)
        others = [o for i, o in enumerate(scene.objects) if i != index]
        if all(noun_phrase(o.look, parts) != phrase for o in others):
            return "the " + phrase.split(" ", 1)[1]
    return None


def _question(
    rng: np.random.Generator,
    question: str,
    right: str,
    values: Sequence[str],
    answer: str,
    choice_share: float,
) -> tuple[str, str]:
    """The question in words, or as the evaluation's two choices (with a random wrong option)."""
    if rng.random() < choice_share:
        wrong = [v for v in values if v != right]
        return two_choice(question, right, wrong[int(rng.integers(len(wrong)))], rng)
    return question, answer


def _visual_question(
    rng: np.random.Generator, subject: str, obj_place: str, obj_size: str, where: str
) -> tuple[str, str]:
    """"Where is X {where}?" or "How big is X {where}?", mostly as two choices."""
    if rng.random() < 0.5:
        phrase = PLACE_PHRASES[obj_place]
        return _question(
            rng,
            f"Where is {subject} {where}?",
            phrase,
            tuple(PLACE_PHRASES.values()),
            f"It is {phrase}.",
            0.7,
        )
    return _question(
        rng, f"How big is {subject} {where}?", obj_size, tuple(SIZES), f"It is {obj_size}.", 0.7
    )


def _named_object(
    rng: np.random.Generator, looks: Sequence[Look], max_objects: int
) -> tuple[Scene, int, str]:
    """A scene, one of its objects, and a short phrase that names it alone ("the blue star")."""
    while True:
        scene = random_scene(rng, looks, max_objects)
        index = int(rng.integers(len(scene.objects)))
        phrase = _unique_phrase(rng, index, scene)
        if phrase is not None:
            return scene, index, phrase


def _about_named_object(
    kind: str, question: str, answer: str, scene: Scene, index: int, phrase: str
) -> Turn:
    """A one-photo turn asking about object `index`, named by `phrase` (gathered from the text)."""
    return Turn(
        kind,
        chat([question]),
        answer,
        (scene,),
        asked_text=phrase,
        target_photo=0,
        target_objects=(index,),
    )


def _where_in_words(phrase: str, place: str) -> tuple[str, str]:
    """"Where is the blue star in this photo?" and its answer in words, as `attribute` and
    `where` both ask it."""
    return f"Where is {phrase} in this photo?", f"It is {PLACE_PHRASES[place]}."


def _attribute(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    scene, index, phrase = _named_object(rng, looks, max_objects)
    obj = scene.objects[index]
    look = obj.look
    where_question, where_answer = _where_in_words(phrase, obj.place)
    asks = [
        (f"What colour is {phrase}?", look.colour, tuple(COLOURS), f"It is {look.colour}."),
        (f"What shape is {phrase}?", look.shape, SHAPES, f"It is {article(look.shape)}."),
        (
            f"What pattern does {phrase} have?",
            PATTERN_NOUNS[look.pattern],
            tuple(PATTERN_NOUNS.values()),
            f"It has {PATTERN_NOUNS[look.pattern]}.",
        ),
        (where_question, PLACE_PHRASES[obj.place], tuple(PLACE_PHRASES.values()), where_answer),
        (f"How big is {phrase} in this photo?", obj.size, tuple(SIZES), f"It is {obj.size}."),
    ]
    question, right, values, answer = asks[int(rng.integers(len(asks)))]
    question, answer = _question(rng, question, right, values, answer, 0.33)
    return _about_named_object("attribute", question, answer, scene, index, phrase)


def _where(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    """"Where is the blue star in this photo?" answered in words ("It is at the top left."): the
    attribute form a photos base missed most (in `attribute` it is one turn in 15)."""
    scene, index, phrase = _named_object(rng, looks, max_objects)
    question, answer = _where_in_words(phrase, scene.objects[index].place)
    return _about_named_object("where", question, answer, scene, index, phrase)


def _where_choice(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    """"Where is the blue star in this photo?" with two places to choose from, one of them
    right, the other any other place (as the evaluation draws its wrong option)."""
    scene, index, phrase = _named_object(rng, looks, max_objects)
    place = scene.objects[index].place
    question, answer = _where_in_words(phrase, place)
    question, answer = _question(
        rng, question, PLACE_PHRASES[place], tuple(PLACE_PHRASES.values()), answer, 1.0
    )
    return _about_named_object("where_choice", question, answer, scene, index, phrase)


def _plural(shape: str) -> str:
    return "crosses" if shape == "cross" else shape + "s"


def _count(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    scene = random_scene(rng, looks, max_objects)
    if rng.random() < 0.5:
        count = len(scene.objects)
        noun = "object" if count == 1 else "objects"
        verb = "is" if count == 1 else "are"
        return Turn(
            "count",
            chat(["How many objects are in this photo?"]),
            f"There {verb} {NUMBERS[count]} {noun}.",
            (scene,),
            target_photo=0,
            target_objects=tuple(range(count)),  # what count shares point at
            rest=True,  # the default pointer target: nothing is asked to match
        )
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if rng.random() < 0.6:
        shape = scene.objects[int(rng.integers(len(scene.objects)))].look.shape
    matching = tuple(i for i, o in enumerate(scene.objects) if o.look.shape == shape)
    count = len(matching)
    noun = shape if count == 1 else _plural(shape)
    verb = "is" if count == 1 else "are"
    question = f"How many {_plural(shape)} are there?"
    return Turn(
        "count",
        chat([question]),
        f"There {verb} {NUMBERS[count]} {noun}.",
        (scene,),
        asked_text=_plural(shape),
        target_photo=0,
        target_objects=matching,
        rest=not matching,
    )


def _describe(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    while True:
        scene = random_scene(rng, looks, max_objects)
        if scene.main is not None:
            break
    question = MAIN_QUESTIONS[int(rng.integers(len(MAIN_QUESTIONS)))]
    return Turn(
        "describe", chat([question]), main_description(scene.main.look), (scene,), rest=True
    )


def _subject_with_distractors(
    rng: np.random.Generator, look: Look, looks: Sequence[Look], same_words: bool, max_objects: int
) -> tuple[Scene, int]:
    """A photo of `look` with up to `max_objects - 1` distractors (look-alikes among them when
    `same_words`, else none with `look`'s words); returns it and the subject's index."""
    pool = set(looks)
    chosen = [look]
    for _ in range(int(rng.integers(max_objects))):
        if same_words and rng.random() < 0.5:
            other = symbolic._look_alike(rng, look, pool, 0.5)
        else:
            other = random_look(rng, looks)
        if other not in chosen and (same_words or other.words != look.words):
            chosen.append(other)
    order = rng.permutation(len(chosen))
    background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    scene = Scene(place_objects(rng, [chosen[i] for i in order]), background)
    return scene, int(np.flatnonzero(order == 0)[0])


def _locate(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    look = random_look(rng, looks)
    name = made_up_name(rng)
    by_photo = rng.random() < 0.6
    scene, index = _subject_with_distractors(rng, look, looks, by_photo, max_objects)
    obj = scene.objects[index]
    question, answer = _visual_question(rng, name, obj.place, obj.size, "in this photo")
    if by_photo:
        return Turn(
            "locate",
            chat([f"{name} is {IMAGE_TOKEN}.", question]),
            answer,
            (scene, single_object_scene(rng, look)),
            asked_photo=1,
            target_photo=0,
            target_objects=(index,),
        )
    introduction, words = symbolic._introduction(rng, name, look)
    return Turn(
        "locate",
        chat([introduction, question]),
        answer,
        (scene,),
        asked_text=words,
        target_photo=0,
        target_objects=(index,),
    )


def _photos(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    look = random_look(rng, looks)
    name = made_up_name(rng)
    k = 1 + int(rng.integers(3))
    references = tuple(single_object_scene(rng, look) for _ in range(k))
    asked = tuple(range(k))
    draw = rng.random()
    if draw < 0.2:
        question, answer = symbolic._text_question(rng, name, look)
        text = f"{name} is in these photos." if k > 1 else f"{name} is in this photo."
        return SkillTurn(
            "photos", chat([text, question], photos_first=k), answer, references, asked_photos=asked
        )
    if draw < 0.4:
        scene, index = _subject_with_distractors(rng, look, looks, True, max_objects)
        obj = scene.objects[index]
        question, answer = _visual_question(rng, name, obj.place, obj.size, "in the last photo")
        return SkillTurn(
            "photos",
            chat([reference_text(name, k), question], photos_first=k + 1),
            answer,
            (*references, scene),
            target_photo=k,
            target_objects=(index,),
            asked_photos=asked,
        )
    present = rng.random() < 0.5
    scene, hard = symbolic._query_scene(rng, look, present, looks, max_objects)
    question = LAST_PHOTO_QUESTIONS[int(rng.integers(len(LAST_PHOTO_QUESTIONS)))].format(c=name)
    if present:
        answer = f"Yes, {name} is in the last photo."
    else:
        answer = f"No, {name} is not in the last photo."
    if rng.random() < 0.2:
        question, answer = two_choice(
            question, "yes" if present else "no", "no" if present else "yes", rng
        )
    fields = {f: getattr(look, f) for f in ("shape", "colour", "shade", "pattern", "style", "rim")}
    return SkillTurn(
        "photos",
        chat([reference_text(name, k), question], photos_first=k + 1),
        answer,
        (*references, scene),
        target_photo=k,
        target_objects=symbolic._best_matches(fields, scene),
        label="yes" if present else ("hard" if hard else "no"),
        asked_photos=asked,
    )


_SKILL_BUILDERS = {
    "attribute": _attribute,
    "count": _count,
    "describe": _describe,
    "locate": _locate,
    "photos": _photos,
    "where": _where,
    "where_choice": _where_choice,
}
TASK_WEIGHTS = {
    "presence": 0.1,
    "named": 0.07,
    "reference": 0.12,
    "same": 0.08,
    "main": 0.05,
    "ref_text": 0.05,
    "named_text": 0.03,
    "attribute": 0.12,
    "count": 0.1,
    "describe": 0.04,
    "locate": 0.1,
    "photos": 0.14,
    "where": 0.0,
    "where_choice": 0.0,
}


def skill_turn(
    rng: np.random.Generator,
    looks: Sequence[Look],
    kind: str | None = None,
    mix: Mapping[str, float] = TASK_WEIGHTS,
    max_objects: int = 3,
) -> Turn:
    """One generated turn of `kind` (a symbolic task or a skill), or drawn with `mix`."""
    if kind is None:
        kind = symbolic.draw_kind(rng, mix)
    if kind in _SKILL_BUILDERS:
        return _SKILL_BUILDERS[kind](rng, looks, max_objects)
    return symbolic.turn(rng, looks, kind, max_objects=max_objects)


def leading_photos(prompt: str) -> int:
    """How many photos come first in a user turn, before any text."""
    photos = 0
    while prompt.startswith("USER: " + f"{IMAGE_TOKEN}\n" * (photos + 1)):
        photos += 1
    return photos


def with_prefix(turn: Turn, prefix: str, photos: Sequence[Scene] = ()) -> Turn:
    """The turn with `prefix` (a concept prompt) where the chat model puts one: right after the
    photos that come first, or at the start of the text; `photos`, one for each `<image>` of
    `prefix`, join the turn's photos there, and the turn's own photo indices move past them."""
    head, marker, rest = turn.prompt.partition("ASSISTANT:")
    leading = leading_photos(head)
    cut = len("USER: " + f"{IMAGE_TOKEN}\n" * leading)
    prompt = head[:cut] + prefix + " " + head[cut:] + marker + rest
    if not photos:
        return replace(turn, prompt=prompt)

    def moved(index: int | None) -> int | None:
        return index + len(photos) if index is not None and index >= leading else index

    changes: dict[str, object] = {
        "prompt": prompt,
        "photos": (*turn.photos[:leading], *photos, *turn.photos[leading:]),
        "asked_photo": moved(turn.asked_photo),
        "target_photo": moved(turn.target_photo),
    }
    if isinstance(turn, SkillTurn):
        changes["asked_photos"] = tuple(moved(p) for p in turn.asked_photos)
    return replace(turn, **changes)


def with_unasked_statements(
    rng: np.random.Generator, turn: Turn, looks: Sequence[Look], photo_share: float = 0.0
) -> Turn:
    """The turn with one or two statements ("kel is a big red star.") about names it never
    mentions, where the chat model puts active concepts' prompts (`with_prefix`): a user talks
    about a subject, then asks about something else. Trained without them, a base answered 0.28
    of generic photo turns with one such statement before the question, 0.96 without (40 turns
    each of count, describe, presence, attribute; measured), so a chat with an active concept
    lost its generic answers. `photo_share` of the statements show a photo of one object
    instead of words ("kel is <image>."), as a trained concept's prompt shows its latent rows,
    which start from its photos' image tokens."""
    wanted = int(rng.integers(1, 3))
    names: list[str] = []
    while len(names) < wanted:
        name = made_up_name(rng)
        if name not in names and not re.search(rf"\b{name}\b", turn.prompt):
            names.append(name)
    statements, photos = [], []
    for name in names:
        look = random_look(rng, looks)
        if photo_share and rng.random() < photo_share:
            statements.append(f"{name} is {IMAGE_TOKEN}.")
            photos.append(single_object_scene(rng, look))
        else:
            statements.append(symbolic._introduction(rng, name, look)[0])
    return with_prefix(turn, " ".join(statements), photos)


def _joins_word_to_newline(merge: Sequence[str]) -> bool:
    merged = "".join(merge)
    cut = merged.find("\n")
    return cut > 0 and merged[:cut].strip("\u2581") != ""


def separate_words_from_newlines(tokenizer: object) -> object:
    """The tokenizer without the BPE merges that join a word to the newline after it.

    The symbolic base's tokenizer learnt "\u2581red\nB" and "\u2581blue\nAnswer" as single
    tokens from the two-choice questions, so an option's word was never the word of the
    description it must be matched against: copying a described colour into its option
    letter stalled at 0.70-0.80 and the attribute and place questions near 0.55 in a first
    stage-2 run (measured). Without those merges the option reads "\u2581red", "\nB": the
    same token as in the description. The vocabulary and every id stay as they were (the
    merged tokens are no longer produced), so the base's rows carry over unchanged."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        path = Path(folder) / "tokenizer.json"
        spec = json.loads(path.read_text())
        merges = spec["model"]["merges"]
        spec["model"]["merges"] = [m for m in merges if not _joins_word_to_newline(m)]
        path.write_text(json.dumps(spec))
        return AutoTokenizer.from_pretrained(folder)


def wire_choose_head(model: LlamaForCausalLM, seed: int) -> None:
    """Start the choose head (head `SUPERVISED_HEAD` of `CHOOSE_LAYER`) as a content match, as
    `symbolic.wire_matching_heads` starts the pointer: one random projection as its query and
    key map. Two-choice questions were never learnt without a head for them: a first stage-2
    run answered "A" to 0.47 of them while answering the same questions in words at 1.0; with
    this head alone the answer position attended to the right option (0.965 of its attention,
    97% of turns) yet answered 0.57: the option's words did not know their letter, hence the
    letter head (`symbolic.LETTER_LAYER`; measured)."""
    rows, projection = symbolic.content_projection(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        attention = model.model.layers[CHOOSE_LAYER].self_attn
        attention.q_proj.weight[rows] = projection
        attention.k_proj.weight[rows] = projection


PLACE_INITS = ("zero", "random", "words")
"""How `add_place_tokens` starts the place tokens' input rows."""


def is_stage_two(tokenizer: object) -> bool:
    """Whether a base's tokenizer has the place tokens: a stage-2 export, whose place rows and
    trained choose head a further stage-2 run keeps (a symbolic base gets both added)."""
    return PLACE_TOKENS[0] in tokenizer.get_vocab()


def add_place_tokens(
    model: LlamaForCausalLM, tokenizer: object, init: str = "zero", seed: int = 0
) -> None:
    """Give a base without them the place tokens: new vocabulary entries whose output rows start
    at zero, and whose input rows start at zero (`init` "zero": the base's slots, and every
    answer it gives, stay exactly what they were until training grows the rows), at random
    directions as long as a word row ("random"), or at the sum of their place's words (" top" +
    " left" for `<place_0>`) as long as a word row ("words": a slot then holds the words that
    name its place, as it holds its colour's word).
    Measured: "random" cut r3's reference yes-recall from 0.95 to 0.56 before any training;
    from "zero" the rows grew to 0.3-0.8 of a word's 10.5 in 3,000 steps, about 2% of a slot,
    and photos' place answers stayed at chance; from "random" they count in the slot, yet
    "Where is ...?" stayed at chance on exact slots after 3,000 steps. The slot length stays the
    one the base was trained with."""
    if init not in PLACE_INITS:
        msg = f"Place rows start as one of {PLACE_INITS}, got {init!r}."
        raise ValueError(msg)
    if is_stage_two(tokenizer):
        return
    table = model.get_input_embeddings().weight.detach()
    old = table.shape[0]
    if getattr(model.config, "slot_scale", None) is None:
        model.config.slot_scale = slot_scale(table)
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in PLACE_TOKENS], special_tokens=True
    )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        added = model.get_input_embeddings().weight[old:]
        if init == "zero":
            added.zero_()
        else:
            if init == "random":
                directions = torch.randn(added.shape, generator=torch.Generator().manual_seed(seed))
            else:
                directions = torch.stack(
                    [
                        table[tokenizer(" " + place, add_special_tokens=False)["input_ids"]].sum(0)
                        for place in PLACES
                    ]
                )
            added.copy_(torch.nn.functional.normalize(directions, dim=-1) * slot_scale(table))
        model.get_output_embeddings().weight[old:] = 0.0


@dataclass
class SkillsConfig:
    """A stage-2 run's settings; stored in its checkpoint and log."""

    steps: int = 6000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    pointer_weight: float = 1.0
    letter_weight: float = 1.0
    """The letter head's share of the head losses (0: no letter head, as part 1 of the README's
    photos-base commands trained)."""
    place_init: str = "zero"
    """How the place tokens' input rows start (`add_place_tokens`: "zero", "random" (as the
    committed base's places-first stage started) or "words")."""
    count_shares: bool = False
    """Count turns' pointer target: the sink and each counted object an even share
    (`count_pointer_target`); False, as the bases before 2026-12-08 trained (the committed one's
    later stages turn it on): the counted objects' slots evenly, or the sink for "How many
    objects"."""
    choose_own_words: bool = False
    """The choose head's target: the right option's own words (`own_option_words`); False, as
    the bases before 2026-12-08 trained (the committed one's last stages turn it on): every word
    of the right option."""
    seed: int = 0
    eval_every: int = 250
    eval_per_task: int = 200
    mix: dict[str, float] = field(default_factory=lambda: dict(TASK_WEIGHTS))

    def lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup)
        progress = min(1.0, step / self.steps)
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _first_token_decides(answer: str) -> bool:
    return answer.split(",")[0] in ("Yes", "No") or len(answer) == 1


@torch.inference_mode()
def skill_accuracy(
    model: LlamaForCausalLM,
    encoder: SkillEncoder,
    per_task: int,
    seed: int,
    tasks: Sequence[str] = TASKS,
    batch_size: int = 100,
) -> dict[str, float]:
    """Held-out accuracy per task (and per answer label of recognition tasks): yes/no and
    letters by their first answer token, other answers when every token is the top one."""
    looks = generic_looks()
    rng = np.random.default_rng(seed)
    pad = encoder.tokenizer.pad_token_id
    hits: dict[str, list[bool]] = defaultdict(list)
    was_training = model.training
    model.eval()
    for kind in tasks:
        turns = [skill_turn(rng, looks, kind) for _ in range(per_task)]
        items = [encoder.encode(t) for t in turns]
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            hidden, _ = forward(model, collate(chunk, pad), attentions=False)
            for row, item in enumerate(chunk):
                hit = answer_hit(model, hidden[row], item, turns[start + row].answer)
                hits[kind].append(hit)
                if item.label:
                    hits[f"{kind}/{item.label}"].append(hit)
    model.train(was_training)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}


def answer_hit(model: torch.nn.Module, hidden: torch.Tensor, item: Encoded, answer: str) -> bool:
    """Whether teacher-forced greedy reading gets `item`'s answer: its first token for yes/no
    and letters, every token otherwise (`hidden`: the turn's last-layer states)."""
    start, end = item.answer_start, len(item.input_ids)
    predicted = model.lm_head(hidden[start - 1 : end - 1]).argmax(-1)
    right = predicted == torch.tensor(item.input_ids[start:end])
    return bool(right[0] if _first_token_decides(answer) else right.all())


def train_skills(
    out: Path,
    base: Path,
    config: SkillsConfig,
    max_minutes: float | None = None,
    stop_after: int | None = None,
) -> dict[str, float]:
    """Continue the symbolic base or stage-2 export in `base` on every task of `config.mix` (or
    resume in `out`)."""
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = symbolic.load_symbolic(base)
    tokenizer = separate_words_from_newlines(tokenizer)
    if not is_stage_two(tokenizer):
        add_place_tokens(model, tokenizer, config.place_init, config.seed)
        wire_choose_head(model, config.seed)
    tokenizer_folder = out / "tokenizer"
    if not tokenizer_folder.is_dir():
        tokenizer.save_pretrained(tokenizer_folder)
    encoder = SkillEncoder(tokenizer, config.count_shares, config.choose_own_words)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    rng = np.random.default_rng(config.seed + 1)
    step, minutes_before = 0, 0.0
    checkpoint_path = out / "checkpoint.pt"
    state = symbolic.resume_run(checkpoint_path, model, optimizer, schedule, rng)
    if state is not None:
        step, minutes_before = state["step"], state["minutes"]
        logger.warning("Resumed %s at step %d (%.1f min)", out, step, minutes_before)
    looks = generic_looks()
    pad = tokenizer.pad_token_id
    started = time.monotonic()
    sums: dict[str, float] = defaultdict(float)
    counted = 0
    accuracy: dict[str, float] = {}
    last = config.steps if stop_after is None else min(stop_after, config.steps)
    while step < last:
        items = [
            encoder.encode(skill_turn(rng, looks, mix=config.mix)) for _ in range(config.batch_size)
        ]
        loss, parts = symbolic.batch_loss(
            model, collate(items, pad), config.pointer_weight, letter_weight=config.letter_weight
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        for k, v in parts.items():
            sums[k] += v
        counted += 1
        if step % config.eval_every == 0 or step == last:
            minutes = minutes_before + (time.monotonic() - started) / 60
            accuracy = skill_accuracy(model, encoder, config.eval_per_task, config.seed + 7)
            record = {
                "step": step,
                "minutes": round(minutes, 2),
                "lr": round(schedule.get_last_lr()[0], 6),
                **{f"loss_{k}": round(v / counted, 4) for k, v in sums.items()},
                "accuracy": accuracy,
            }
            with (out / "log.jsonl").open("a") as log:
                log.write(json.dumps(record) + "\n")
            logger.warning(
                "step %d %.1f min loss %s accuracy %s",
                step,
                minutes,
                {k: record[f"loss_{k}"] for k in sums},
                {k: accuracy.get(k) for k in TASKS},
            )
            sums.clear()
            counted = 0
            symbolic.save_run(
                checkpoint_path,
                model,
                optimizer,
                schedule,
                rng,
                step=step,
                minutes=minutes,
                config=asdict(config),
                base=str(base),
            )
            if max_minutes is not None and minutes >= max_minutes:
                break
    return accuracy


EXPORT_EVAL_SEED = 11


def export(out: Path, folder: Path, per_task: int = 200) -> dict[str, object]:
    """Write the run in `out` as a half-precision Llama with its tokenizer and `training.json`
    (config, log, and the held-out accuracy of the written weights) in `folder`."""
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    model, _ = symbolic.load_symbolic(Path(state["base"]))
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    base_tokenizer = AutoTokenizer.from_pretrained(state["base"])
    add_place_tokens(model, base_tokenizer)
    model.load_state_dict(state["model"])
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    accuracy = skill_accuracy(model, SkillEncoder(tokenizer), per_task, EXPORT_EVAL_SEED)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    report = {
        "config": state["config"],
        "base": state["base"],
        "step": state["step"],
        "minutes": round(state["minutes"], 1),
        "held_out": {"per_task": per_task, "seed": EXPORT_EVAL_SEED, "accuracy": accuracy},
        "log": log,
    }
    base_report = Path(state["base"]) / "training.json"
    if is_stage_two(base_tokenizer) and base_report.is_file():
        report["continued_from"] = json.loads(base_report.read_text())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.half().save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "training.json").write_text(json.dumps(report, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for checkpoint.pt, log.jsonl, tokenizer/")
    parser.add_argument(
        "--base",
        type=saved_folder("config.json"),
        help="the symbolic base, or a stage-2 export, to continue",
    )
    defaults = SkillsConfig()
    for name in ("steps", "batch_size", "warmup", "seed", "eval_every", "eval_per_task"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("learning_rate", "pointer_weight", "letter_weight", "weight_decay"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument("--place-init", choices=PLACE_INITS, default=defaults.place_init)
    parser.add_argument(
        "--count-shares",
        action="store_true",
        help="count turns point at the sink and each counted object evenly",
    )
    parser.add_argument(
        "--choose-own-words",
        action="store_true",
        help="the choose head attends to the right option's words the other option lacks",
    )
    parser.add_argument(
        "--task-weight",
        action="append",
        default=[],
        metavar="TASK=WEIGHT",
        help="change one task's weight in the mix (repeatable), e.g. locate=0.4",
    )
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--export", type=Path, default=None, metavar="FOLDER")
    return parser


def task_mix(
    overrides: Sequence[str], weights: Mapping[str, float] = TASK_WEIGHTS
) -> dict[str, float]:
    """`weights` with each "task=weight" of `overrides` in place of that task's weight."""
    mix = dict(weights)
    for override in overrides:
        task, _, weight = override.partition("=")
        if task not in mix:
            msg = f"--task-weight {override!r}: no task {task!r}; tasks are {', '.join(mix)}."
            raise ValueError(msg)
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not value >= 0:
            msg = f"--task-weight {override!r}: the weight must be a number >= 0, as locate=0.4."
            raise ValueError(msg)
        mix[task] = value
    if sum(mix.values()) <= 0:
        msg = f"--task-weight {' '.join(overrides)!r} leaves every task at weight 0."
        raise ValueError(msg)
    return mix


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.export is not None:
        report = export(args.out, args.export)
        logger.warning("Wrote %s: held-out accuracy %s", args.export, report["held_out"])
        return 0
    if args.base is None:
        msg = "Name the symbolic base to continue with --base FOLDER."
        raise SystemExit(msg)
    config = SkillsConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        pointer_weight=args.pointer_weight,
        letter_weight=args.letter_weight,
        place_init=args.place_init,
        count_shares=args.count_shares,
        choose_own_words=args.choose_own_words,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_per_task=args.eval_per_task,
        mix=task_mix(args.task_weight),
    )
    train_skills(args.out, args.base, config, args.max_minutes, args.stop_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
