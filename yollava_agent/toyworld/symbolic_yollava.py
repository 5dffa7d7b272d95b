"""Yo'LLaVA on the frozen symbolic base: do trained concept tokens recognise a subject?

`python -m yollava_agent.toyworld.symbolic_yollava BASE OUT` takes a symbolic base
(`symbolic.py`, photos as slots) and eight of the world's subjects that share their words in
pairs (bo/kip stars, zuri/pem circles, oda/rune squares, uma/vex triangles: a pair differs only in
two unnamed attributes). Per subject, photos as the toyworld benchmark draws them
(`benchmark.subject_scene`: 5 train photos, 8 test photos at new places, scales and backgrounds
with distractors, half of them same-word look-alikes) and a training pool (the other subjects'
train photos, 300 generic scenes, 8 one-attribute look-alikes per subject).

Methods, each asked "Is {c} in this photo?" and read from the first answer token (Yes vs No):

- `vanilla`: the plain name, nothing said about it.
- `description`: "bo is a blue striped star." (the words; never the unnamed attributes).
- `reference`: "bo is <slots of one train photo>." (the pretraining's reference task).
- `trained` / `trained-slot-init`: the project's recipe (`training/`): the 17 input rows and 17
  output rows of `<bo>`, `<bo_1>`..`<bo_16>` trained through the trainer's own forward hooks
  (`trainer._ConceptRows`) on the frozen base, with its data builders (16 recognition phrasings
  per train photo, "no" turns on mined negatives, text turns of the ten attribute questions the
  base answers with the photo), AdamW on the rows only, the best epoch by training recognition
  accuracy after the warm-up. Rows start from the mean embedding (the trainer's
  `initial_concept`) or, for `-slot-init`, the latent rows from the slots of the first train
  photo. Negatives: hard (the pool photos nearest to the train photos, as CLIP similarity
  mines them; here an object's slot vector stands for its embedding) plus easy; `-no-hard` the
  same number drawn at random; `-no-look-alikes` mined the same way from candidates without any
  photo of an object that shares the subject's words (its look-alikes and its pair-mate).

Negatives at test time, reported apart: `others` (every other subject's test photos, the paper's
protocol) and `look-alikes` (8 photos per subject of a same-word look-alike, one unnamed attribute
off, with the same distractors; description cannot tell these by construction). Weighted =
(positive + negative) / 2 for each. Text QA: colour, shape and pattern as two choices.

Not the trainer itself: `train_concept` takes PIL photos through a LLaVA processor, and this
base reads slots, so the loop here repeats its recipe (same hooks, samples and optimiser).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from transformers import AddedToken, LlamaForCausalLM

from yollava_agent.concept import concept_tokens, identifier_token
from yollava_agent.evaluation.methods import QA_INSTRUCTION, QA_LETTERS
from yollava_agent.prompts import concept_prompt
from yollava_agent.toyworld.benchmark import (
    BENCHMARK_TRAINING,
    POOL_LOOK_ALIKES,
    POOL_SCENES,
    TEST_PHOTOS,
    TEST_PLACES,
    TEST_RADII,
    TRAIN_BACKGROUNDS,
    TRAIN_PHOTOS,
    TRAIN_PLACES,
    TRAIN_RADII,
    subject_scene,
    text_questions,
)
from yollava_agent.toyworld.language import main_description
from yollava_agent.toyworld.slots import slot_components, slot_vectors
from yollava_agent.toyworld.symbolic import (
    Encoder,
    Turn,
    chat,
    collate,
    forward,
    load_symbolic,
    single_object_scene,
)
from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    Look,
    Scene,
    generic_looks,
    look_alikes,
    random_look,
    random_scene,
    subjects,
)
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import (
    OBJECT_ATTRIBUTE_QUESTIONS,
    SUBJECT_IN_PHOTO,
    recognition_samples,
    text_samples,
)
from yollava_agent.training.trainer import _ConceptRows, mean_start_rows

logger = logging.getLogger(__name__)

PAIRED_SUBJECTS = ("bo", "kip", "zuri", "pem", "oda", "rune", "uma", "vex")
"""Four pairs that share their words (first two of four of the world's subject groups)."""
METHODS = (
    "vanilla",
    "description",
    "reference",
    "trained",
    "trained-no-hard",
    "trained-slot-init",
    "trained-slot-init-no-hard",
    "trained-no-look-alikes",
    "trained-slot-init-no-look-alikes",
)
RECOGNITION_QUESTION = "Is {c} in this photo?"


@dataclass
class SubjectPhotos:
    look: Look
    train: list[Scene]
    test: list[Scene]
    look_alike_test: list[Scene]
    """Test-like photos of a same-word look-alike (one unnamed attribute off) instead."""


def _test_photo(
    rng: np.random.Generator, look: Look, same_words: Sequence[Look], generic: Sequence[Look]
) -> Scene:
    """A test photo of `look` as the benchmark draws them: a corner, a new scale, any
    background, 0-2 distractors, half of them same-word look-alikes of some subject."""
    distractors = [
        random_look(rng, same_words) if rng.random() < 0.5 else random_look(rng, generic)
        for _ in range(int(rng.integers(0, 3)))
    ]
    return subject_scene(rng, look, TEST_PLACES, TEST_RADII, tuple(BACKGROUNDS), distractors)


def subject_photos(names: Sequence[str], seed: int) -> dict[str, SubjectPhotos]:
    """Train and test photos of each subject, drawn as the toyworld benchmark draws them."""
    rng = np.random.default_rng(seed)
    generic = generic_looks()
    generic_set = set(generic)
    looks = subjects()
    subject_words = {looks[n].words for n in names}
    same_words = sorted(
        {
            a
            for n in names
            for a in look_alikes(looks[n])
            if a in generic_set and a.words in subject_words
        },
        key=repr,
    )
    photos = {}
    for name in names:
        look = looks[name]
        train = [
            subject_scene(
                rng,
                look,
                TRAIN_PLACES,
                TRAIN_RADII,
                TRAIN_BACKGROUNDS,
                [random_look(rng, generic)] if i >= TRAIN_PHOTOS - 2 else [],
            )
            for i in range(TRAIN_PHOTOS)
        ]

        test = [_test_photo(rng, look, same_words, generic) for _ in range(TEST_PHOTOS)]
        alikes = [a for a in look_alikes(look) if a in generic_set and a.words == look.words]
        alike_test = [
            _test_photo(rng, alikes[i % len(alikes)], same_words, generic)
            for i in range(TEST_PHOTOS)
        ]
        photos[name] = SubjectPhotos(look, train, test, alike_test)
    return photos


def training_pool(photos: dict[str, SubjectPhotos], seed: int) -> list[tuple[str, Scene]]:
    """(label, photo) negatives to mine from: other subjects' train photos are added per subject;
    here 300 generic scenes and 8 one-attribute look-alikes per subject, as the benchmark's pool."""
    rng = np.random.default_rng(seed + 1)
    generic = generic_looks()
    generic_set = set(generic)
    pool = [(f"scene-{i}", random_scene(rng, generic)) for i in range(POOL_SCENES)]
    for name, item in photos.items():
        candidates = [a for a in look_alikes(item.look) if a in generic_set]
        unnamed = [a for a in candidates if a.words == item.look.words]
        named = [a for a in candidates if a.words != item.look.words]
        chosen = unnamed * 2 + [
            random_look(rng, named) for _ in range(POOL_LOOK_ALIKES - 2 * len(unnamed))
        ]
        pool += [(f"alike-{name}-{i}", single_object_scene(rng, a)) for i, a in enumerate(chosen)]
    return pool


class ConceptBase:
    """The frozen base with room for every subject's 17 tokens, and the encoder that knows them."""

    def __init__(self, model: LlamaForCausalLM, tokenizer: object, names: Sequence[str]) -> None:
        self.base_vocab = len(tokenizer)
        self.tokenizer = copy.deepcopy(tokenizer)
        k = BENCHMARK_TRAINING.num_latent_tokens
        self.tokenizer.add_tokens(
            [
                AddedToken(t, special=True, normalized=False)
                for n in names
                for t in concept_tokens(n, k)
            ],
            special_tokens=True,
        )
        self.model = copy.deepcopy(model)
        self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        with torch.no_grad():
            # A concept's own rows come from its training, through the hooks; the other subjects'
            # rows are zero, not the resize's unseeded draw, which made every run train
            # differently (measured: the same seed gave 0.74, 0.77 and 0.82 weighted).
            self.model.get_input_embeddings().weight[self.base_vocab :] = 0.0
            self.model.lm_head.weight[self.base_vocab :] = 0.0
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.model.eval()
        self.encoder = Encoder(self.tokenizer)
        self.yes = self.tokenizer(" Yes", add_special_tokens=False)["input_ids"][0]
        self.no = self.tokenizer(" No", add_special_tokens=False)["input_ids"][0]

    def first_id(self, name: str) -> int:
        return self.tokenizer.convert_tokens_to_ids(identifier_token(name))

    def initial_rows(
        self, seed: int, slots: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainer's start (mean base row plus seeded noise), latent inputs from `slots`."""
        rows = mean_start_rows(
            (self.model.get_input_embeddings().weight, self.model.lm_head.weight),
            self.base_vocab,
            BENCHMARK_TRAINING.num_latent_tokens + 1,
            seed,
        )
        if slots is not None:
            rows[0][1:] = slots
        return rows[0], rows[1]

    def photo_slots(self, scene: Scene) -> torch.Tensor:
        """(16, hidden) slot vectors of one photo, as the base receives them."""
        components, _ = slot_components(scene, self.encoder.ids)
        table = self.model.get_input_embeddings().weight
        scale = self.model.config.slot_scale
        return slot_vectors(torch.from_numpy(components), table, scale).detach()

    def object_vectors(self, scene: Scene) -> torch.Tensor:
        """(objects, hidden) unit vectors of each object's slot: what mining compares."""
        _, owners = slot_components(scene, self.encoder.ids)
        slots = self.photo_slots(scene)
        vectors = torch.stack(
            [slots[int(np.flatnonzero(owners == i)[0])] for i in range(len(scene.objects))]
        )
        return vectors / vectors.norm(dim=-1, keepdim=True)


def _rows_context(base: ConceptBase, rows: _ConceptRows) -> list:
    return [
        base.model.get_input_embeddings().register_forward_hook(rows.embed_hook),
        base.model.lm_head.register_forward_hook(rows.head_hook),
    ]


def yes_scores(base: ConceptBase, turns: Sequence[Turn], batch_size: int = 64) -> list[float]:
    """logit(Yes) - logit(No) at each turn's first answer token."""
    scores: list[float] = []
    pad = base.tokenizer.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(turns), batch_size):
            items = [base.encoder.encode(t) for t in turns[start : start + batch_size]]
            batch = collate(items, pad)
            hidden, _ = forward(base.model, batch, attentions=False)
            rows = torch.arange(len(items))
            logits = base.model.lm_head(hidden[rows, batch["final"]])
            scores += (logits[:, base.yes] - logits[:, base.no]).tolist()
    return scores


def letter_choices(base: ConceptBase, turns: Sequence[Turn]) -> list[int]:
    """Which option letter (0 for A, 1 for B) scores higher at each turn's first answer token."""
    ids = [base.tokenizer(f" {x}", add_special_tokens=False)["input_ids"][0] for x in QA_LETTERS]
    pad = base.tokenizer.pad_token_id
    with torch.inference_mode():
        items = [base.encoder.encode(t) for t in turns]
        batch = collate(items, pad)
        hidden, _ = forward(base.model, batch, attentions=False)
        logits = base.model.lm_head(hidden[torch.arange(len(items)), batch["final"]])
    return logits[:, ids].argmax(-1).tolist()


def generate(
    base: ConceptBase, prompt: str, photos: tuple[Scene, ...], max_tokens: int = 24
) -> str:
    """Greedy answer of the base to a user turn (what the trainer's `describe_photos` does)."""
    item = base.encoder.encode(Turn("generate", prompt, "x", photos))
    ids = list(item.input_ids[: item.answer_start])
    components = torch.from_numpy(item.components[: item.answer_start])
    blank = torch.full((1, components.shape[1]), -1, dtype=torch.long)
    start = len(ids)
    with torch.inference_mode():
        for _ in range(max_tokens):
            batch = {
                "input_ids": torch.tensor([ids]),
                "components": components.unsqueeze(0),
                "attention_mask": torch.ones((1, len(ids)), dtype=torch.long),
            }
            hidden, _ = forward(base.model, batch, attentions=False)
            token = int(base.model.lm_head(hidden[0, -1]).argmax())
            if token == base.tokenizer.eos_token_id:
                break
            ids.append(token)
            components = torch.cat([components, blank])
    return base.tokenizer.decode(ids[start:]).strip()


@dataclass
class _Sample:
    turn: Turn
    kind: str


def train_rows(
    base: ConceptBase,
    name: str,
    photos: SubjectPhotos,
    negatives: Sequence[Scene],
    config: TrainingConfig,
    slot_init: bool,
) -> tuple[_ConceptRows, dict[str, object]]:
    """The project's recipe on the symbolic base; returns the best epoch's rows and a report."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    identifier = identifier_token(name)
    prompt = concept_prompt(name, config.num_latent_tokens)
    questions = OBJECT_ATTRIBUTE_QUESTIONS
    answers = [
        [generate(base, chat([q.format(c=SUBJECT_IN_PHOTO)]), (scene,)) for q in questions]
        for scene in photos.train
    ]
    samples = recognition_samples(
        identifier,
        [(f"train-{i}", s) for i, s in enumerate(photos.train)],
        [(f"neg-{i}", s) for i, s in enumerate(negatives)],
        config.turns_per_positive,
        rng,
    ) + text_samples(identifier, questions, answers)
    turns = [
        _Sample(
            Turn(
                s.kind,
                chat([prompt, s.question], photos_first=0 if s.image is None else 1),
                s.answer,
                () if s.image is None else (s.image,),
            ),
            s.kind,
        )
        for s in samples
    ]
    slots = base.photo_slots(photos.train[0]) if slot_init else None
    first = base.first_id(name)
    inputs, outputs = base.initial_rows(config.seed, slots)
    tying = _Tying(bool(base.model.config.tie_word_embeddings))
    rows = _ConceptRows(_RowsStart(inputs, outputs, tying), first)
    optimizer = torch.optim.AdamW(
        rows.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    encoded = [base.encoder.encode(t.turn) for t in turns]
    pad = base.tokenizer.pad_token_id
    steps = (len(encoded) + config.batch_size - 1) // config.batch_size
    best, best_accuracy, best_epoch, accuracies = None, -1.0, 0, []
    handles = _rows_context(base, rows)
    try:
        for epoch in range(1, config.epochs + 1):
            order = list(range(len(encoded)))
            rng.shuffle(order)
            correct = judged = 0
            for step in range(steps):
                chosen = [
                    encoded[i]
                    for i in order[step * config.batch_size : (step + 1) * config.batch_size]
                ]
                batch = collate(chosen, pad)
                hidden, _ = forward(base.model, batch, attentions=False)
                labels = batch["labels"]
                targets = labels[:, 1:]
                r, c = (targets != -100).nonzero(as_tuple=True)
                logits = base.model.lm_head(hidden[r, c]).float()
                loss = torch.nn.functional.cross_entropy(logits, targets[r, c])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for row, item in enumerate(chosen):
                        if item.kind == "text":
                            continue
                        at = item.answer_start
                        index = ((r == row) & (c == at - 1)).nonzero()
                        judged += 1
                        correct += int(logits[index[0, 0]].argmax() == item.input_ids[at])
            accuracy = correct / max(judged, 1)
            accuracies.append(round(accuracy, 4))
            eligible = epoch > config.warmup_epochs or (epoch == config.epochs and best is None)
            if eligible and accuracy >= best_accuracy:
                best_accuracy, best_epoch = accuracy, epoch
                best = (rows.input_rows.detach().clone(), rows.output_rows.detach().clone())
    finally:
        for handle in handles:
            handle.remove()
    assert best is not None
    with torch.no_grad():
        rows.input_rows.copy_(best[0])
        rows.output_rows.copy_(best[1])
    report = {
        "best_epoch": best_epoch,
        "train_accuracy": best_accuracy,
        "epoch_accuracies": accuracies,
        "samples": len(turns),
        "text_answers": answers[0][:3],
    }
    return rows, report


@dataclass(frozen=True)
class _Tying:
    """What `_ConceptRows` reads from a concept's base: whether one set of rows serves both."""

    tied_embeddings: bool


@dataclass
class _RowsStart:
    """What `_ConceptRows` reads from a concept: its starting input and output rows, its base."""

    input_embeddings: torch.Tensor
    output_embeddings: torch.Tensor
    base: _Tying


def mine(
    base: ConceptBase,
    positives: Sequence[Scene],
    pool: Sequence[tuple[str, Scene]],
    config: TrainingConfig,
    hard: bool,
) -> list[Scene]:
    """The miner's rule (`mine_negatives`) on slots instead of CLIP embeddings: the pool photos
    nearest to a positive (the highest cosine between any of their objects' slot vectors), then
    random others; or, without hard ones, as many drawn at random."""
    anchors = torch.cat([base.object_vectors(s) for s in positives])
    scores = torch.tensor([float((base.object_vectors(s) @ anchors.T).max()) for _, s in pool])
    ranked = torch.sort(scores, descending=True, stable=True).indices.tolist()
    total = config.num_hard_negatives + config.num_easy_negatives
    generator = torch.Generator().manual_seed(config.seed)
    if not hard:
        drawn = torch.randperm(len(pool), generator=generator)[:total].tolist()
        return [pool[i][1] for i in drawn]
    chosen = ranked[: config.num_hard_negatives]
    rest = sorted(ranked[config.num_hard_negatives :])
    drawn = torch.randperm(len(rest), generator=generator)[: config.num_easy_negatives].tolist()
    return [pool[i][1] for i in chosen + [rest[j] for j in drawn]]


def without_look_alikes(
    look: Look, candidates: Sequence[tuple[str, Scene]]
) -> list[tuple[str, Scene]]:
    """The candidates in which no object shares `look`'s words without being it: no look-alike
    (one unnamed attribute off) and no pair-mate (two off) is left to learn the difference from."""
    return [
        (label, scene)
        for label, scene in candidates
        if not any(o.look.words == look.words and o.look != look for o in scene.objects)
    ]


def _recognition_turns(
    prompt: str | None, subject: str, scenes: Sequence[Scene], reference: Scene | None
) -> list[Turn]:
    texts = ([prompt] if prompt else []) + [RECOGNITION_QUESTION.format(c=subject)]
    photos_after = (reference,) if reference is not None else ()
    return [Turn("recognition", chat(texts), "Yes", (s, *photos_after)) for s in scenes]


def _qa_turns(
    prompt: str | None,
    subject: str,
    look: Look,
    rng: np.random.Generator,
    reference: Scene | None,
) -> tuple[list[Turn], list[int]]:
    """The three text questions as two choices, and which option is right."""
    turns, answers = [], []
    for question, right, values in text_questions(subject, look):
        wrong = [v for v in values if v != right]
        options = [right, wrong[int(rng.integers(len(wrong)))]]
        answer = int(rng.integers(2))
        if answer:
            options.reverse()
        listed = "\n".join(f"{letter}. {o}" for letter, o in zip(QA_LETTERS, options, strict=True))
        texts = ([prompt] if prompt else []) + [f"{question}\n{listed}\n{QA_INSTRUCTION}"]
        photos = (reference,) if reference is not None else ()
        turns.append(Turn("qa", chat(texts, photos_first=0), "A", photos))
        answers.append(answer)
    return turns, answers


def _rate(scores: Sequence[float], positive: bool) -> float:
    return float(np.mean([(s > 0) == positive for s in scores]))


def evaluate_method(
    base: ConceptBase,
    method: str,
    names: Sequence[str],
    photos: dict[str, SubjectPhotos],
    pool: Sequence[tuple[str, Scene]],
    config: TrainingConfig,
    seed: int,
) -> dict[str, object]:
    """One method on every subject: positives, both negative sets, weighted, text QA."""
    per_subject = {}
    rng = np.random.default_rng(seed + 5)
    for name in names:
        item = photos[name]
        subject, prompt, reference, rows, report = name, None, None, None, {}
        if method == "description":
            prompt = f"{name} is {main_description(item.look).rstrip('.')}."
        elif method == "reference":
            prompt = f"{name} is <image>."
            reference = item.train[0]
        elif method.startswith("trained"):
            others = [
                (f"{n}-train-{i}", s)
                for n in names
                if n != name
                for i, s in enumerate(photos[n].train)
            ]
            candidates = others + list(pool)
            if "no-look-alikes" in method:
                candidates = without_look_alikes(item.look, candidates)
            negatives = mine(base, item.train, candidates, config, hard="no-hard" not in method)
            rows, report = train_rows(base, name, item, negatives, config, "slot-init" in method)
            subject = identifier_token(name)
            prompt = concept_prompt(name, config.num_latent_tokens)
        others = [s for n in names if n != name for s in photos[n].test]
        mates = [n for n in names if n != name and photos[n].look.words == item.look.words]
        handles = _rows_context(base, rows) if rows is not None else []
        try:
            positive = yes_scores(base, _recognition_turns(prompt, subject, item.test, reference))
            negative = yes_scores(base, _recognition_turns(prompt, subject, others, reference))
            mate = yes_scores(
                base,
                _recognition_turns(
                    prompt, subject, [s for n in mates for s in photos[n].test], reference
                ),
            )
            alike = yes_scores(
                base, _recognition_turns(prompt, subject, item.look_alike_test, reference)
            )
            qa, answers = _qa_turns(prompt, subject, item.look, rng, reference)
            chosen = letter_choices(base, qa)
        finally:
            for handle in handles:
                handle.remove()
        pos, neg, hard = _rate(positive, True), _rate(negative, False), _rate(alike, False)
        per_subject[name] = {
            "positive": pos,
            "negative_others": neg,
            "negative_look_alikes": hard,
            "negative_pair_mate": _rate(mate, False) if mate else None,
            "weighted_others": (pos + neg) / 2,
            "weighted_look_alikes": (pos + hard) / 2,
            "text_qa": float(np.mean([c == a for c, a in zip(chosen, answers, strict=True)])),
            **report,
        }
    keys = (
        "positive",
        "negative_others",
        "negative_pair_mate",
        "negative_look_alikes",
        "weighted_others",
        "weighted_look_alikes",
        "text_qa",
    )
    summary = {
        k: round(float(np.mean([r[k] for r in per_subject.values() if r[k] is not None])), 4)
        for k in keys
    }
    return {"summary": summary, "subjects": per_subject}


def run(
    base_folder: Path,
    out: Path,
    methods: Sequence[str],
    names: Sequence[str],
    seed: int,
    epochs: int = BENCHMARK_TRAINING.epochs,
    learning_rate: float = BENCHMARK_TRAINING.learning_rate,
) -> dict[str, object]:
    model, tokenizer = load_symbolic(base_folder)
    base = ConceptBase(model, tokenizer, names)
    photos = subject_photos(names, seed)
    pool = training_pool(photos, seed)
    config = replace(
        BENCHMARK_TRAINING,
        seed=seed,
        epochs=epochs,
        warmup_epochs=min(4, epochs - 1),
        learning_rate=learning_rate,
    )
    results = {}
    for method in methods:
        started = time.monotonic()
        results[method] = evaluate_method(base, method, names, photos, pool, config, seed)
        results[method]["seconds"] = round(time.monotonic() - started, 1)
        logger.warning("%s %s", method, results[method]["summary"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, object]) -> str:
    columns = (
        ("positive", "positive"),
        ("negative_others", "negative: other subjects"),
        ("negative_pair_mate", "of which the pair-mate"),
        ("weighted_others", "weighted: others"),
        ("negative_look_alikes", "negative: look-alikes"),
        ("weighted_look_alikes", "weighted: look-alikes"),
        ("text_qa", "text QA"),
    )
    lines = [
        "| method | " + " | ".join(title for _, title in columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for method, result in results.items():
        summary = result["summary"]
        lines.append(f"| {method} | " + " | ".join(f"{summary[k]:.3f}" for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a symbolic base folder (symbolic.py --export)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--subjects", nargs="+", default=list(PAIRED_SUBJECTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--epochs", type=int, default=BENCHMARK_TRAINING.epochs, help="training epochs per concept"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=BENCHMARK_TRAINING.learning_rate,
        help="AdamW learning rate of the concept rows",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    run(
        args.base, args.out, args.methods, args.subjects, args.seed, args.epochs, args.learning_rate
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
