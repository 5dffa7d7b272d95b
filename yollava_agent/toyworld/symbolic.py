"""Symbolic pretraining: a toyworld language model that matches words and photos, without pixels.

`python -m yollava_agent.toyworld.symbolic OUT` trains a small Llama from nothing on generated
toyworld conversations whose photos are symbolic (`slots.py`: each of a photo's 16 image tokens
is the normalised sum of its object's word rows plus never-spoken tokens for shade, style and
rim), fed as `inputs_embeds` at the image-token positions exactly as LLaVA feeds projected patches.
No vision tower, so a step is cheap and the loop can run for tens of thousands of steps on a CPU.

Tasks (`TASKS`), in the product's phrasings (the trainer's recognition questions and answers,
the evaluation's two-choice format), each with a photo unless said:

- `presence`: "Is a blue star in this photo?"; negatives one named word off or random.
- `named`: "dax is a blue striped star. Is dax in this photo?": the description method.
- `reference`: "dax is <photo>. Is dax in this photo?", the reference a single-object photo in the
  text, where a concept prompt puts its latent tokens; negatives mostly one *unnamed* attribute
  off (the look-alikes a subject must be told from). Yo'LLaVA's prompt is this task's shape.
- `same`: two single-object photos, "Are the objects in these two photos identical?"; "no" is
  mostly one attribute off, named or not. Size and place never count.
- `main`: the trainer's ten attribute questions about "the main subject of this photo" (what
  the base answers for a concept's text turns).
- `ref_text` (no query photo): "dax is <photo>. What colour is dax?": words read from slots, what
  trained tokens answer in text QA. `named_text` (no photo at all): the words copied from text.

Why it does not plateau: the matching circuit gets a gradient from step one (pointer-network
style). At the position that predicts the first answer token, two heads (head 0 of
`GATHER_LAYER` and of `POINT_LAYER`) are trained, by cross-entropy to a uniform target over
positions, to attend to: (gather) what is asked (the question's attribute words, or the reference
photo's object slots); (point) the slots of the photo's object that matches it, or the first
token (an attention sink) when none does, so that this head's attention *is* the yes/no decision.
Both start wired as a content match (`wire_matching_heads`) and input rows start long
(`EMBEDDING_STD`); without either, the pointer learnt only "object slots versus background" and
every yes/no stayed at chance. Everything else (other heads, MLPs, the answer) is free. Loss:
answer tokens (mean per turn) plus `pointer_weight` times the two attention losses. A curriculum
(`CURRICULUM`) moves on when held-out accuracy says so. Stage 2 (`skills.py`) adds two more
supervised heads for two-choice questions (`CHOOSE_LAYER`, `LETTER_LAYER`); this stage has none.

Written to OUT as it goes: `tokenizer/` (trained once, read back on resume), `checkpoint.pt`
(model, optimizer, step, curriculum stage, data-stream state; a run restarted with the same
command resumes from it), `log.jsonl` (loss, minutes and held-out accuracy per task every
`eval_every` steps). `--export FOLDER` writes the checkpoint as a half-precision
`save_pretrained` Llama with its tokenizer and `training.json`. Held-out accuracy: yes/no and
option letters by their first answer token, other answers when every token is the top one.

Chosen not to: pretrain on free text (the world's text is what the tasks say), mix in the pixel
tasks of `base.py` (the next stage regresses a projector onto these slots), give slots a place
(so "where is dax?" cannot be answered: see `slots.py`), the `same` of `language.py` (two objects
in one photo: here two photos, which is what a reference is), supervise the two-choice letter
(with heads trained to attend to the right option and to bind each option word to its letter,
two-choice answers stayed at chance for 7,500 steps; without them, yes/no letters were learnt by
step 3,250: `benchmarks/results/symbolic/r4-log.jsonl`, `r5-log.jsonl`, `r3-log.jsonl`), or wrap the Llama in a LLaVA (the next stage does,
with a vision tower).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AddedToken, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from yollava_agent.evaluation.methods import QA_LETTERS
from yollava_agent.tiny import train_bpe_tokenizer
from yollava_agent.toyworld.language import (
    article,
    made_up_name,
    main_attribute_answer,
    main_description,
    near_miss,
    noun_phrase,
    presence_target,
    tokenizer_corpus,
    two_choice,
)
from yollava_agent.toyworld.slots import (
    COMPONENTS,
    SLOT_WORDS,
    SLOTS,
    UNNAMED_TOKENS,
    slot_components,
    slot_scale,
    slot_vectors,
    word_ids,
)
from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_NOUNS,
    SHAPES,
    Look,
    Scene,
    generic_looks,
    look_alikes,
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

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
GATHER_LAYER = 1
POINT_LAYER = 2
SUPERVISED_HEAD = 0
SUPERVISED_LAYERS = {"gather": GATHER_LAYER, "point": POINT_LAYER}
"""Which layer's `SUPERVISED_HEAD` each head loss trains (the batch's target row of that name)."""
CHOOSE_LAYER = 3
"""Head `SUPERVISED_HEAD` of this layer (after the pointer) is the choose head: at the final
prompt position it attends to the right option of a two-choice question (a batch's `choose`
row, written only by encoders that ask for it)."""
LETTER_LAYER, LETTER_HEAD = 0, 1
"""The letter head: at each option word it attends to that option's letter ("A" of "\nA. red"),
so the option's words carry their letter to whatever attends to them (a batch's `letter` row:
for each position, the position of its letter, or -1)."""
RECOGNITION_TASKS = ("presence", "named", "reference", "same")
TASKS = (*RECOGNITION_TASKS, "main", "ref_text", "named_text")
GATE_TASKS = ("presence", "same", "reference")
EXPORT_EVAL_PER_TASK = 200
EXPORT_EVAL_SEED = 11
"""The held-out turns an exported base is measured on (and its CI test re-measures)."""
SAME_QUESTIONS = (
    "Are the objects in these two photos identical?",
    "Is the object in the second photo the same as the one in the first?",
)
SAME_ANSWERS = ("Yes, they are identical.", "No, they are different.")
_LOOK_FIELDS = ("shape", "colour", "shade", "pattern", "style", "rim")
_NAMED_FIELDS = ("colour", "pattern", "shape")


@dataclass(frozen=True)
class Turn:
    """One generated conversation: the user turn's text, its photos and what the heads target."""

    kind: str
    prompt: str
    """The user turn as llava-1.5's template renders it, `<image>` where each photo goes."""
    answer: str
    photos: tuple[Scene, ...]
    """In the order of the `<image>` markers of `prompt`."""
    asked_text: str | None = None
    """A substring of `prompt` whose attribute words are what is asked (gather target)."""
    asked_photo: int | None = None
    """Or a photo whose object slots are what is asked (a reference)."""
    target_photo: int | None = None
    """The photo the pointer head looks into, and its objects it should attend to."""
    target_objects: tuple[int, ...] = ()
    label: str = ""
    """'yes', 'no', 'hard' (a no whose best match is one unnamed attribute off) or ''."""
    rest: bool = False
    """The pointer head is to attend to the sink: nothing in the photo is asked to match."""


def chat(texts: Sequence[str], photos_first: int = 1) -> str:
    """A user turn as llava-1.5's template renders it: photos first, then each text and a space."""
    return (
        "USER: "
        + f"{IMAGE_TOKEN}\n" * photos_first
        + "".join(t + " " for t in texts)
        + "ASSISTANT:"
    )


def _best_matches(look_fields: Mapping[str, object], scene: Scene) -> tuple[int, ...]:
    """Objects of `scene` sharing the most of `look_fields` (attribute -> value)."""
    scores = [sum(getattr(o.look, k) == v for k, v in look_fields.items()) for o in scene.objects]
    best = max(scores)
    return tuple(i for i, s in enumerate(scores) if s == best)


def _recognition(rng: np.random.Generator, subject: str, present: bool) -> tuple[str, str]:
    question = RECOGNITION_QUESTIONS[int(rng.integers(len(RECOGNITION_QUESTIONS)))]
    answers = POSITIVE_ANSWERS if present else NEGATIVE_ANSWERS
    return question.format(c=subject), answers[int(rng.integers(len(answers)))].format(c=subject)


def _yes_no(
    rng: np.random.Generator, subject: str, present: bool, choice_share: float
) -> tuple[str, str]:
    """A recognition question and answer, sometimes as the evaluation's two choices."""
    question, answer = _recognition(rng, subject, present)
    if rng.random() < choice_share:
        return two_choice(question, "yes" if present else "no", "no" if present else "yes", rng)
    return question, answer


def _presence(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    scene = random_scene(rng, looks, max_objects)
    wanted = rng.random() < 0.5
    target, parts, phrase, present = presence_target(rng, scene, looks, wanted)
    question, answer = _yes_no(rng, phrase, present, 0.25)
    fields = {k: getattr(target, k) for k in _NAMED_FIELDS if k in parts}
    return Turn(
        "presence",
        chat([question]),
        answer,
        (scene,),
        asked_text=phrase,
        target_photo=0,
        target_objects=_best_matches(fields, scene),
        label="yes" if present else "no",
    )


def _introduction(rng: np.random.Generator, name: str, look: Look) -> tuple[str, str]:
    words = main_description(look).rstrip(".") if rng.random() < 0.5 else noun_phrase(look)
    return f"{name} is {words}.", words


def _named(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    scene = random_scene(rng, looks, max_objects)
    name = made_up_name(rng)
    wanted = rng.random() < 0.5
    for _ in range(8):
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        look = obj.look
        if not wanted:
            look = near_miss(rng, look, looks) if rng.random() < 0.7 else random_look(rng, looks)
        present = any(o.look.words == look.words for o in scene.objects)
        if present == wanted:
            break
    introduction, words = _introduction(rng, name, look)
    question, answer = _yes_no(rng, name, present, 0.2)
    fields = {k: getattr(look, k) for k in _NAMED_FIELDS}
    return Turn(
        "named",
        chat([introduction, question]),
        answer,
        (scene,),
        asked_text=words,
        target_photo=0,
        target_objects=_best_matches(fields, scene),
        label="yes" if present else "no",
    )


def _alikes(look: Look, looks: set[Look]) -> tuple[list[Look], list[Look]]:
    """`look`'s one-attribute-off neighbours among `looks`: (same words, other words)."""
    near = [a for a in look_alikes(look) if a in looks]
    return [a for a in near if a.words == look.words], [a for a in near if a.words != look.words]


def single_object_scene(rng: np.random.Generator, look: Look) -> Scene:
    """One object of `look` at a random place and size on a random background."""
    background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return Scene(place_objects(rng, [look]), background)


ALIKE_DISTANCES = (0.6, 0.25, 0.15)
"""How often a look-alike differs in one, two or three attributes: a concept's nearest other
subject differs in two unnamed ones, and one-off negatives alone teach "exactly one off is no"."""


def _look_alike(rng: np.random.Generator, look: Look, looks: set[Look], unnamed: float) -> Look:
    """A look one to three attribute changes away from `look` (`ALIKE_DISTANCES`), each change
    kept unnamed (same words) with probability `unnamed`."""
    steps = 1 + int(rng.choice(len(ALIKE_DISTANCES), p=ALIKE_DISTANCES))
    current = look
    for _ in range(steps):
        same_words, other_words = _alikes(current, looks)
        same_words = [a for a in same_words if a != look]
        other_words = [a for a in other_words if a != look]
        keep = (rng.random() < unnamed and same_words) or not other_words
        pick = same_words if keep else other_words
        current = pick[int(rng.integers(len(pick)))]
    return current


def _query_scene(
    rng: np.random.Generator, look: Look, present: bool, looks: Sequence[Look], max_objects: int
) -> tuple[Scene, bool]:
    """A photo to ask about `look`: with it (and distractors, half of them its look-alikes) or
    without it (a look-alike, mostly one unnamed attribute off, and random others).
    Also returns whether the best match of a "no" is an unnamed-attribute look-alike."""
    pool = set(looks)
    count = int(rng.integers(1, max_objects + 1))
    chosen: list[Look] = []
    hard = False
    if present:
        chosen.append(look)
    else:
        alike = _look_alike(rng, look, pool, 0.7)
        hard = alike.words == look.words
        chosen.append(alike)
    while len(chosen) < count:
        other = _look_alike(rng, look, pool, 0.5) if rng.random() < 0.5 else random_look(rng, looks)
        if other not in chosen and other != look:
            chosen.append(other)
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return Scene(place_objects(rng, order), background), hard


def _reference(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    look = random_look(rng, looks)
    present = rng.random() < 0.5
    scene, hard = _query_scene(rng, look, present, looks, max_objects)
    name = made_up_name(rng)
    question, answer = _yes_no(rng, name, present, 0.2)
    fields = {k: getattr(look, k) for k in _LOOK_FIELDS}
    return Turn(
        "reference",
        chat([f"{name} is {IMAGE_TOKEN}.", question]),
        answer,
        (scene, single_object_scene(rng, look)),
        asked_photo=1,
        target_photo=0,
        target_objects=_best_matches(fields, scene),
        label="yes" if present else ("hard" if hard else "no"),
    )


def _same(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    first = random_look(rng, looks)
    identical = rng.random() < 0.5
    hard = False
    if identical:
        second = first
    elif rng.random() < 0.8:
        second = _look_alike(rng, first, set(looks), 0.6)
        hard = second.words == first.words
    else:
        second = random_look(rng, looks)
        identical = second == first
    question = SAME_QUESTIONS[int(rng.integers(len(SAME_QUESTIONS)))]
    answer = SAME_ANSWERS[0 if identical else 1]
    if rng.random() < 0.2:
        question, answer = two_choice(
            question, "yes" if identical else "no", "no" if identical else "yes", rng
        )
    return Turn(
        "same",
        chat([question], photos_first=2),
        answer,
        (single_object_scene(rng, first), single_object_scene(rng, second)),
        asked_photo=1,
        target_photo=0,
        target_objects=(0,),
        label="yes" if identical else ("hard" if hard else "no"),
    )


def _text_question(rng: np.random.Generator, name: str, look: Look) -> tuple[str, str]:
    """'What colour is dax?' as a two-choice question or in words, and its answer."""
    asks = [
        (f"What colour is {name}?", look.colour, tuple(COLOURS), f"It is {look.colour}."),
        (f"What shape is {name}?", look.shape, SHAPES, f"It is {article(look.shape)}."),
        (
            f"What pattern does {name} have?",
            PATTERN_NOUNS[look.pattern],
            tuple(PATTERN_NOUNS.values()),
            f"It has {PATTERN_NOUNS[look.pattern]}.",
        ),
    ]
    question, right, values, answer = asks[int(rng.integers(len(asks)))]
    if rng.random() < 0.5:
        wrong = [v for v in values if v != right]
        return two_choice(question, right, wrong[int(rng.integers(len(wrong)))], rng)
    return question, answer


def _main(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    while True:
        scene = random_scene(rng, looks, max_objects)
        if scene.main is not None:
            break
    template = OBJECT_ATTRIBUTE_QUESTIONS[int(rng.integers(len(OBJECT_ATTRIBUTE_QUESTIONS)))]
    answer = main_attribute_answer(template, scene.main, scene)
    # The pointer head's attention is the other tasks' yes/no decision (object if it matches
    # what is asked, the sink if not); nothing is asked to match here, so it rests on the sink.
    # Pointing it at the main object instead, or leaving it free, pulled it off that role and
    # presence fell from 0.75 to 0.66 (measured).
    return Turn("main", chat([template.format(c=SUBJECT_IN_PHOTO)]), answer, (scene,), rest=True)


def _ref_text(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    look = random_look(rng, looks)
    name = made_up_name(rng)
    question, answer = _text_question(rng, name, look)
    return Turn(
        "ref_text",
        chat([f"{name} is {IMAGE_TOKEN}.", question], photos_first=0),
        answer,
        (single_object_scene(rng, look),),
        asked_photo=0,
    )


def _named_text(rng: np.random.Generator, looks: Sequence[Look], max_objects: int) -> Turn:
    look = random_look(rng, looks)
    name = made_up_name(rng)
    introduction, words = _introduction(rng, name, look)
    question, answer = _text_question(rng, name, look)
    return Turn(
        "named_text", chat([introduction, question], photos_first=0), answer, (), asked_text=words
    )


_BUILDERS = {
    "presence": _presence,
    "named": _named,
    "reference": _reference,
    "same": _same,
    "main": _main,
    "ref_text": _ref_text,
    "named_text": _named_text,
}
TASK_WEIGHTS = {
    "presence": 0.2,
    "named": 0.12,
    "reference": 0.26,
    "same": 0.18,
    "main": 0.08,
    "ref_text": 0.1,
    "named_text": 0.06,
}


TOKENIZER_MIX = {
    "presence": 0.22,
    "named": 0.14,
    "reference": 0.26,
    "same": 0.2,
    "ref_text": 0.1,
    "named_text": 0.08,
}
"""The turns the tokenizer is trained on (fixed, so that changing `TASK_WEIGHTS` keeps it)."""


def turn(
    rng: np.random.Generator,
    looks: Sequence[Look],
    kind: str | None = None,
    mix: Mapping[str, float] = TASK_WEIGHTS,
    max_objects: int = 3,
) -> Turn:
    """One generated turn of `kind`, or of a kind drawn with the `mix` weights."""
    if kind is None:
        kind = draw_kind(rng, mix)
    return _BUILDERS[kind](rng, looks, max_objects)


def draw_kind(rng: np.random.Generator, mix: Mapping[str, float]) -> str:
    """A task kind drawn with the `mix` weights."""
    kinds = list(mix)
    weights = np.asarray([mix[k] for k in kinds], dtype=float)
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


# --- the tokenizer and the model ---------------------------------------------------------------


def build_tokenizer(seed: int = 0, vocab_size: int = 1000) -> object:
    """The world's BPE tokenizer, trained on the world's text and these tasks' chat turns, with
    the never-spoken tokens added (special: no text ever tokenises into them)."""
    rng = np.random.default_rng(seed)
    looks = generic_looks()
    corpus = tokenizer_corpus(rng, looks)
    for _ in range(3000):
        item = turn(rng, looks, mix=TOKENIZER_MIX)
        corpus.append(item.prompt.replace(IMAGE_TOKEN, " ") + " " + item.answer)
    # Slot words must be single tokens; backgrounds are rare in the text, so list them often.
    corpus += [" ".join(SLOT_WORDS)] * 200
    tokenizer = train_bpe_tokenizer(corpus, vocab_size, split_punctuation=True)
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in UNNAMED_TOKENS],
        special_tokens=True,
    )
    word_ids(tokenizer)
    return tokenizer


@dataclass
class ModelShape:
    """The language model's size (a Llama, as llava-1.5's)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 384


EMBEDDING_STD = 1.0
"""Input rows start at about the length of a normalised hidden state (sqrt(hidden)), not at
Llama's 0.02: with tiny rows, what the first layer writes is ~60x longer than a token's own row,
and which word (or which object in a slot) a position holds is buried in the residual stream."""


def build_model(tokenizer: object, shape: ModelShape, seed: int) -> LlamaForCausalLM:
    """A fresh Llama with `EMBEDDING_STD` input rows and the matching heads wired
    (`wire_matching_heads`)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        torch.nn.init.normal_(model.get_input_embeddings().weight, std=EMBEDDING_STD)
    wire_matching_heads(model)
    return model


def content_projection(
    model: LlamaForCausalLM, generator: torch.Generator | None = None
) -> tuple[slice, torch.Tensor]:
    """The rows of head `SUPERVISED_HEAD` in a layer's query, key and value maps, and a random
    projection (head size x hidden, rows of length about 1) that wires a head as a content match."""
    head = model.config.hidden_size // model.config.num_attention_heads
    hidden = model.config.hidden_size
    rows = slice(SUPERVISED_HEAD * head, (SUPERVISED_HEAD + 1) * head)
    return rows, torch.randn(head, hidden, generator=generator) / hidden**0.5


def wire_matching_heads(model: LlamaForCausalLM) -> None:
    """Start the supervised heads as a content match, so that the pointer's attention depends on
    what is asked from step one (a bilinear match learnt from a random start is the plateau).

    One random projection P (head size x hidden) is the gather head's value map and, transposed,
    its output map (what is gathered lands in the residual stream near where it came from), and
    both the query and the key map of the pointer head: the pointer's score of a slot is then
    about P(gathered words) . P(slot), high where they share rows. Everything stays trainable."""
    rows, projection = content_projection(model)
    with torch.no_grad():
        gather = model.model.layers[GATHER_LAYER].self_attn
        gather.v_proj.weight[rows] = projection
        gather.o_proj.weight[:, rows] = projection.T
        point = model.model.layers[POINT_LAYER].self_attn
        point.q_proj.weight[rows] = projection
        point.k_proj.weight[rows] = projection


# --- encoding ----------------------------------------------------------------------------------


@dataclass
class Encoded:
    """A turn's ids with each `<image>` expanded to 16 slot positions, and the heads' targets."""

    input_ids: list[int]
    components: np.ndarray
    """(len(input_ids), 8) slot component ids, -1 outside slots."""
    answer_start: int
    gather: list[int]
    point: list[int]
    kind: str
    label: str
    decided_by_first: bool
    choose: list[int] | None = None
    """The right option's tokens of a two-choice turn (empty for other turns), or None when the
    encoder does not target the choose head."""
    letters: dict[int, int] | None = None
    """Each option word's position -> its letter's position (with `choose`)."""
    point_weights: list[float] | None = None
    """The pointer target's share of each position of `point` (None: an even split)."""


def option_span(prompt: str, letter: str) -> tuple[int, int]:
    """Where the option of `letter` ("\nA. red") is written in a two-choice prompt."""
    marker = f"\n{letter}. "
    start = prompt.index(marker) + len(marker)
    return start, prompt.index("\n", start)


class Encoder:
    """Turns `Turn`s into model inputs with one tokenizer (`choose`: also target the choose head
    at the right option of two-choice turns)."""

    def __init__(self, tokenizer: object, sink_for_no: bool = True, choose: bool = False) -> None:
        self.tokenizer = tokenizer
        self.sink_for_no = sink_for_no
        self.choose = choose
        self.ids = word_ids(tokenizer)
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.attribute_ids = {self.ids[w] for w in (*COLOURS, *PATTERN_NOUNS, *SHAPES)}

    def encode(self, item: Turn) -> Encoded:
        tok = self.tokenizer
        full_text = f"{item.prompt} {item.answer}"
        prompt_ids = tok(item.prompt)["input_ids"]
        full = tok(full_text, return_offsets_mapping=True)
        ids, offsets = full["input_ids"], full["offset_mapping"]
        if ids[: len(prompt_ids)] != prompt_ids:
            msg = f"The answer of {item} does not extend its prompt's tokens."
            raise ValueError(msg)
        asked_tokens: set[int] = set()
        if item.asked_text is not None:
            # The last occurrence: statements put before a question (`skills.with_prefix`) may
            # use the same words, and a turn's own asked text occurs once.
            start = item.prompt.rindex(item.asked_text)
            end = start + len(item.asked_text)
            asked_tokens = {
                i
                for i, (a, b) in enumerate(offsets[: len(prompt_ids)])
                if a < end and b > start and ids[i] in self.attribute_ids
            }
        option_tokens: set[int] = set()
        letter_of: dict[int, int] = {}
        if self.choose and item.answer in QA_LETTERS:
            prompt_offsets = list(enumerate(offsets[: len(prompt_ids)]))
            for letter in QA_LETTERS:
                start, end = option_span(item.prompt, letter)
                letter_at = start - len(". ") - 1
                letter_token = next(i for i, (a, b) in prompt_offsets if a <= letter_at < b)
                words = {i for i, (a, b) in prompt_offsets if a < end and b > start}
                letter_of |= dict.fromkeys(words, letter_token)
                if letter == item.answer:
                    option_tokens = words
        position_of: dict[int, int] = {}
        expanded: list[int] = []
        components: list[np.ndarray] = []
        gather: list[int] = []
        point: list[int] = []
        choose: list[int] = []
        answer_start = len(prompt_ids)
        photo = 0
        blank = np.full((1, COMPONENTS), -1, dtype=np.int64)
        for index, token in enumerate(ids + [tok.eos_token_id]):
            if index == len(prompt_ids):
                answer_start = len(expanded)
            if token != self.image_id:
                position_of[index] = len(expanded)
                if index in asked_tokens:
                    gather.append(len(expanded))
                if index in option_tokens:
                    choose.append(len(expanded))
                expanded.append(token)
                components.append(blank)
                continue
            rows, owners = slot_components(item.photos[photo], self.ids)
            if photo == item.asked_photo:
                gather += [len(expanded) + s for s in range(SLOTS) if owners[s] >= 0]
            if photo == item.target_photo:
                point += [
                    len(expanded) + s for s in range(SLOTS) if owners[s] in item.target_objects
                ]
            expanded += [self.image_id] * SLOTS
            components.append(rows)
            photo += 1
        if item.rest or (self.sink_for_no and item.label in ("no", "hard")):
            point = [0]
        if photo != len(item.photos):
            msg = f"{item.kind} turn has {len(item.photos)} photos but {photo} image markers."
            raise ValueError(msg)
        first = item.answer.split(",")[0] in ("Yes", "No") or len(item.answer) == 1
        return Encoded(
            expanded,
            np.concatenate(components),
            answer_start,
            gather,
            point,
            item.kind,
            item.label,
            first,
            choose if self.choose else None,
            {position_of[w]: position_of[k] for w, k in letter_of.items()} if self.choose else None,
        )


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask, answer labels, slot components and the heads' target rows."""
    length = max(len(e.input_ids) for e in items)
    size = len(items)
    input_ids = torch.full((size, length), pad_id, dtype=torch.long)
    attention = torch.zeros((size, length), dtype=torch.long)
    labels = torch.full((size, length), -100, dtype=torch.long)
    components = torch.full((size, length, COMPONENTS), -1, dtype=torch.long)
    gather = torch.zeros((size, length))
    point = torch.zeros((size, length))
    final = torch.zeros(size, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids = torch.tensor(item.input_ids)
        input_ids[row, :n] = ids
        attention[row, :n] = 1
        labels[row, item.answer_start : n] = ids[item.answer_start :]
        components[row, :n] = torch.from_numpy(item.components)
        final[row] = item.answer_start - 1
        if item.gather:
            gather[row, item.gather] = 1.0 / len(item.gather)
        if item.point_weights is not None:
            point[row, item.point] = torch.tensor(item.point_weights)
        elif item.point:
            point[row, item.point] = 1.0 / len(item.point)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "components": components,
        "gather": gather,
        "point": point,
        "final": final,
    }
    if any(item.choose is not None for item in items):
        choose = torch.zeros((size, length))
        letter = torch.full((size, length), -1, dtype=torch.long)
        for row, item in enumerate(items):
            if item.choose:
                choose[row, item.choose] = 1.0 / len(item.choose)
            for word, at in (item.letters or {}).items():
                letter[row, word] = at
        batch["choose"] = choose
        batch["letter"] = letter
    return batch


def embed(
    model: LlamaForCausalLM, input_ids: torch.Tensor, components: torch.Tensor
) -> torch.Tensor:
    """Input embeddings with slot vectors at the slot positions (as LLaVA scatters image tokens).

    Slots are as long as `model.config.slot_scale` once a base is exported (fixed), and as the
    mean row while it trains."""
    table = model.get_input_embeddings()
    embeds = table(input_ids)
    is_slot = (components[..., 0] >= 0).unsqueeze(-1)
    slots = slot_vectors(components, table.weight, getattr(model.config, "slot_scale", None))
    return torch.where(is_slot, slots.to(embeds.dtype), embeds)


def forward(
    model: LlamaForCausalLM, batch: Mapping[str, torch.Tensor], attentions: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Hidden states of the last layer, and every layer's attention weights when asked."""
    out = model.model(
        inputs_embeds=embed(model, batch["input_ids"], batch["components"]),
        attention_mask=batch["attention_mask"],
        output_attentions=attentions,
    )
    return out.last_hidden_state, out.attentions


def answer_loss(
    model: LlamaForCausalLM, hidden: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy over each turn's answer tokens, averaged per turn, then over the batch
    (logits only where answers are)."""
    targets = labels[:, 1:]
    rows, cols = (targets != -100).nonzero(as_tuple=True)
    logits = model.lm_head(hidden[rows, cols]).float()
    per_token = torch.nn.functional.cross_entropy(logits, targets[rows, cols], reduction="none")
    per_turn = torch.zeros(labels.shape[0]).index_add_(0, rows, per_token)
    counts = torch.zeros(labels.shape[0]).index_add_(0, rows, torch.ones_like(per_token))
    return (per_turn / counts.clamp(min=1)).mean()


def head_loss(attention: torch.Tensor, target: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of one head's attention at each turn's final prompt position against a
    uniform target over the wanted positions (turns without a target count nothing)."""
    rows = torch.arange(attention.shape[0])
    weights = attention[rows, SUPERVISED_HEAD, final]
    has = target.sum(-1) > 0
    if not has.any():
        return attention.sum() * 0.0
    loss = -(target * torch.log(weights.clamp(min=1e-9))).sum(-1)
    return loss[has].mean()


def letter_loss(attention: torch.Tensor, letter: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the letter head's attention at every option word against its letter."""
    rows, words = torch.nonzero(letter >= 0, as_tuple=True)
    if len(rows) == 0:
        return attention.sum() * 0.0
    weights = attention[rows, LETTER_HEAD, words, letter[rows, words]]
    return -torch.log(weights.clamp(min=1e-9)).mean()


@dataclass
class Stage:
    """A part of the curriculum: its task mix and most objects per photo, and when it ends:
    once every task of `gate` scores `advance_at` on the held-out turns, or after `max_steps`."""

    name: str
    mix: dict[str, float]
    max_objects: int
    gate: tuple[str, ...] = ()
    advance_at: float = 1.0
    max_steps: int = 10**9


CURRICULUM = (
    Stage(
        "words",
        {"presence": 0.45, "named": 0.35, "named_text": 0.2},
        max_objects=3,
        gate=("presence", "named"),
        advance_at=0.8,
        max_steps=4000,
    ),
    Stage(
        "references",
        {
            "presence": 0.15,
            "named": 0.1,
            "reference": 0.3,
            "same": 0.25,
            "main": 0.05,
            "ref_text": 0.1,
            "named_text": 0.05,
        },
        max_objects=2,
        gate=("reference", "same"),
        advance_at=0.8,
        max_steps=8000,
    ),
    Stage("everything", dict(TASK_WEIGHTS), max_objects=3),
)
"""Words first (presence, named), then references and same, then everything. Photos have up to
three objects from the start: trained on one object, the pointer's yes on three-object photos
fell from 0.84 to 0.50 as training went on (measured). `main` waits for the second stage: with it
in the first, presence and named stalled at 0.7 (measured)."""


@dataclass
class PretrainConfig:
    """Everything a pretraining run is made from; stored in its checkpoint and log."""

    steps: int = 30000
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup: int = 300
    decay_from: float = 0.8
    """Share of `steps` after which the learning rate falls (cosine) to a tenth."""
    weight_decay: float = 0.01
    pointer_weight: float = 1.0
    sink_for_no: bool = True
    """A "no" turn's pointer target: the first token (an attention sink: nothing matches), or,
    when False, the near miss's slots."""
    seed: int = 0
    eval_every: int = 250
    eval_per_task: int = 200
    shape: ModelShape = field(default_factory=ModelShape)
    stages: list[Stage] = field(default_factory=lambda: list(CURRICULUM))

    def lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup)
        start = self.decay_from * self.steps
        if step < start:
            return warm
        progress = min(1.0, (step - start) / max(1.0, self.steps - start))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_loss(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    pointer_weight: float,
    forward: Callable[..., tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]] = forward,
    letter_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The answers' loss plus `pointer_weight` times the supervised heads' losses (the letter
    head's times `letter_weight`, none at 0); `forward` gives the last hidden states and
    attentions (slots here, photos in `assembly.py`)."""
    hidden, attentions = forward(model, batch, attentions=pointer_weight > 0)
    answer = answer_loss(model, hidden, batch["labels"])
    parts = {"answer": answer.item()}
    loss = answer
    if pointer_weight > 0:
        assert attentions is not None
        heads = {
            name: head_loss(attentions[layer], batch[name], batch["final"])
            for name, layer in SUPERVISED_LAYERS.items()
        }
        if "choose" in batch:
            heads["choose"] = head_loss(attentions[CHOOSE_LAYER], batch["choose"], batch["final"])
            if letter_weight > 0:
                heads["letter"] = letter_weight * letter_loss(
                    attentions[LETTER_LAYER], batch["letter"]
                )
        loss = loss + pointer_weight * sum(heads.values())
        parts |= {name: value.item() for name, value in heads.items()}
    return loss, parts


@torch.inference_mode()
def held_out_accuracy(
    model: LlamaForCausalLM,
    encoder: Encoder,
    per_task: int,
    seed: int,
    looks: Sequence[Look] | None = None,
    batch_size: int = 100,
) -> dict[str, float]:
    """Accuracy per task on `per_task` held-out turns (fixed by `seed`), plus, for recognition
    tasks, per answer label (`reference/hard`: no-answers whose best match is one unnamed
    attribute off), and the supervised heads' attention mass on their targets
    (`reference/gather`, `reference/point`)."""
    looks = list(looks) if looks is not None else generic_looks()
    rng = np.random.default_rng(seed)
    pad = encoder.tokenizer.pad_token_id
    hits: dict[str, list[bool]] = defaultdict(list)
    mass: dict[str, list[float]] = defaultdict(list)
    was_training = model.training
    model.eval()
    for kind in TASKS:
        items = [encoder.encode(turn(rng, looks, kind)) for _ in range(per_task)]
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = collate(chunk, pad)
            hidden, attentions = forward(model, batch, attentions=True)
            predicted = model.lm_head(hidden).argmax(-1)[:, :-1]
            labels = batch["labels"][:, 1:]
            rows = torch.arange(len(chunk))
            focus = {
                name: (
                    attentions[layer][rows, SUPERVISED_HEAD, batch["final"]] * (batch[name] > 0)
                ).sum(-1)
                for name, layer in (("gather", GATHER_LAYER), ("point", POINT_LAYER))
            }
            for row, item in enumerate(chunk):
                wanted = labels[row] != -100
                right = predicted[row][wanted] == labels[row][wanted]
                hit = bool(right[0] if item.decided_by_first else right.all())
                hits[kind].append(hit)
                if item.label:
                    hits[f"{kind}/{item.label}"].append(hit)
                if item.gather:
                    mass[f"{kind}/gather"].append(float(focus["gather"][row]))
                if item.point:
                    mass[f"{kind}/point"].append(float(focus["point"][row]))
    model.train(was_training)
    result = {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}
    result |= {k: round(float(np.mean(v)), 3) for k, v in sorted(mass.items())}
    return result


# --- the run -----------------------------------------------------------------------------------


def run_tokenizer(out: Path, seed: int) -> object:
    """The run's tokenizer: written to `out/tokenizer` when the run starts and read back on
    resume and export, so that later changes to the generated text cannot change a run's ids."""
    folder = out / "tokenizer"
    if folder.is_dir():
        return AutoTokenizer.from_pretrained(folder)
    tokenizer = build_tokenizer(seed)
    staging = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=out))
    tokenizer.save_pretrained(staging)
    staging.rename(folder)
    return tokenizer


def _atomic_save(obj: object, path: Path) -> None:
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    torch.save(obj, staging)
    os.replace(staging, path)


def save_run(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    rng: np.random.Generator,
    **extra: object,
) -> None:
    """Write a resumable training run (weights, optimiser, schedule, both generators and
    `extra`) to `path` through a temporary file renamed into place."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    _atomic_save(state | extra, path)


def resume_run(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    rng: np.random.Generator,
) -> dict | None:
    """Restore what `save_run` wrote to `path` into the given objects and return the whole
    state (its extras included), or None when there is no run to resume."""
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return state


def pretrain(
    out: Path,
    config: PretrainConfig,
    max_minutes: float | None = None,
    stop_after: int | None = None,
) -> dict[str, float]:
    """Train (or resume) in `out` until `config.steps` (or `stop_after` steps, which leaves the
    learning-rate schedule as `config.steps` sets it); returns the last held-out accuracy."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = run_tokenizer(out, config.seed)
    encoder = Encoder(tokenizer, config.sink_for_no)
    model = build_model(tokenizer, config.shape, config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    rng = np.random.default_rng(config.seed + 1)
    step, minutes_before, stage, stage_start = 0, 0.0, 0, 0
    checkpoint_path = out / "checkpoint.pt"
    state = resume_run(checkpoint_path, model, optimizer, schedule, rng)
    if state is not None:
        step, minutes_before = state["step"], state["minutes"]
        stage, stage_start = state["stage"], state["stage_start"]
        logger.warning("Resumed %s at step %d (%.1f min)", out, step, minutes_before)
    looks = generic_looks()
    pad = tokenizer.pad_token_id
    started = time.monotonic()
    log_path = out / "log.jsonl"
    model.train()
    sums: dict[str, float] = defaultdict(float)
    counted = 0
    accuracy: dict[str, float] = {}

    def minutes() -> float:
        return minutes_before + (time.monotonic() - started) / 60

    last = config.steps if stop_after is None else min(stop_after, config.steps)
    while step < last:
        current = config.stages[stage]
        items = [
            encoder.encode(turn(rng, looks, mix=current.mix, max_objects=current.max_objects))
            for _ in range(config.batch_size)
        ]
        loss, parts = batch_loss(model, collate(items, pad), config.pointer_weight)
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
            accuracy = held_out_accuracy(model, encoder, config.eval_per_task, config.seed + 7)
            record = {
                "step": step,
                "minutes": round(minutes(), 2),
                "stage": current.name,
                "lr": round(schedule.get_last_lr()[0], 6),
                **{f"loss_{k}": round(v / counted, 4) for k, v in sums.items()},
                "accuracy": accuracy,
            }
            with log_path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            logger.warning(
                "step %d %.1f min loss %s gate %s",
                step,
                record["minutes"],
                {k: record[f"loss_{k}"] for k in sums},
                {k: accuracy.get(k) for k in GATE_TASKS},
            )
            sums.clear()
            counted = 0
            passed = current.gate and all(accuracy[k] >= current.advance_at for k in current.gate)
            if stage + 1 < len(config.stages) and (
                passed or step - stage_start >= current.max_steps
            ):
                stage, stage_start = stage + 1, step
                logger.warning("step %d: curriculum stage %r", step, config.stages[stage].name)
            save_run(
                checkpoint_path,
                model,
                optimizer,
                schedule,
                rng,
                step=step,
                minutes=minutes(),
                stage=stage,
                stage_start=stage_start,
                config=asdict(config),
            )
            if max_minutes is not None and minutes() >= max_minutes:
                break
    return accuracy


def config_from_dict(values: Mapping[str, object]) -> PretrainConfig:
    """The `PretrainConfig` a checkpoint or log stored with `asdict`."""
    values = dict(values)
    values["shape"] = ModelShape(**values["shape"])
    values["stages"] = [Stage(**{**s, "gate": tuple(s["gate"])}) for s in values["stages"]]
    return PretrainConfig(**values)


def export(out: Path, folder: Path, per_task: int = EXPORT_EVAL_PER_TASK) -> dict[str, object]:
    """Write the checkpoint in `out` as a half-precision `save_pretrained` Llama and tokenizer
    in `folder` (through a temporary sibling), with `training.json`: the run's config, its
    log, and the held-out accuracy of the written (rounded) weights, measured as the CI test
    measures it. Returns that report."""
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    config = config_from_dict(state["config"])
    tokenizer = run_tokenizer(out, config.seed)
    model = build_model(tokenizer, config.shape, config.seed)
    model.load_state_dict(state["model"])
    with torch.no_grad():
        # The weights as they will be stored; not `model.half()`, which would also round the
        # rotary frequencies, which loading recomputes in float32.
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    model.config.slot_scale = slot_scale(model.get_input_embeddings().weight)
    accuracy = held_out_accuracy(
        model, Encoder(tokenizer, config.sink_for_no), per_task, EXPORT_EVAL_SEED
    )
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    report = {
        "config": state["config"],
        "step": state["step"],
        "minutes": round(state["minutes"], 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out": {
            "per_task": per_task,
            "seed": EXPORT_EVAL_SEED,
            "scale": model.config.slot_scale,
            "accuracy": accuracy,
        },
        "log": log,
        "torch": torch.__version__,
    }
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


def load_symbolic(folder: Path) -> tuple[LlamaForCausalLM, object]:
    """A written symbolic base (float32, eval mode) and its tokenizer."""
    model = LlamaForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for checkpoint.pt, log.jsonl and model/")
    defaults = PretrainConfig()
    for name in ("steps", "batch_size", "warmup", "seed", "eval_every", "eval_per_task"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    for name in ("learning_rate", "pointer_weight", "weight_decay", "decay_from"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument("--hidden", type=int, default=ModelShape.hidden)
    parser.add_argument("--layers", type=int, default=ModelShape.layers)
    parser.add_argument("--heads", type=int, default=ModelShape.heads)
    parser.add_argument("--intermediate", type=int, default=ModelShape.intermediate)
    parser.add_argument(
        "--no-target",
        choices=("sink", "near-miss"),
        default="sink",
        help="where a no-turn's pointer head is trained to attend",
    )
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this long")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop at this step (the schedule still follows --steps); rerun to continue",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="do not train: write OUT's checkpoint to FOLDER (half precision) with training.json",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.export is not None:
        report = export(args.out, args.export)
        logger.warning("Wrote %s: held-out accuracy %s", args.export, report["held_out"])
        return 0
    config = PretrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup=args.warmup,
        decay_from=args.decay_from,
        weight_decay=args.weight_decay,
        pointer_weight=args.pointer_weight,
        sink_for_no=args.no_target == "sink",
        seed=args.seed,
        eval_every=args.eval_every,
        eval_per_task=args.eval_per_task,
        shape=ModelShape(args.hidden, args.layers, args.heads, args.intermediate),
    )
    pretrain(args.out, config, args.max_minutes, args.stop_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
