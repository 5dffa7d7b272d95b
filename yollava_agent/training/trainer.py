"""Training one concept: only its k+1 input rows and k+1 output rows change.

The rows live in a small module of their own (fp32 master copies), spliced into the frozen model by
two forward hooks: one replaces the concept tokens' input embeddings, the other replaces the
concept tokens' logits with `hidden @ output_rows.T`. So AdamW (with its weight decay) only ever
sees those rows, and every base parameter stays bit-identical by construction. On a base that ties
its output head to its input embeddings, both hooks use one and the same parameter: what is
trained is what the tied model serves once the concept is injected. Loss is on answer
tokens only. Each epoch's training recognition accuracy is read off the first answer token
("Yes"/"No") of the recognition turns in the same forward pass, and its loss per answer token is
reported per kind of turn (whether the text-only turns fit); the kept rows are those of the
best epoch after the warm-up. A run whose kept epoch says "yes" to under half of its positive
turns has collapsed into "always no", and one under `TrainingConfig.restart_below_accuracy` on
its recognition turns did not fit them either; `TrainingConfig.restarts` trains again from the
next seed. With `TrainingConfig.latent_interpolation` under 1 the kept latent rows then move back
towards their start (WiSE-FT's weight-space ensemble, on the concept's rows), if the moved rows
still fit the training turns.

Two ways to compute a step, chosen by `TrainingConfig.fast`: `_full_sequence_step` (the reference:
the whole sequence, vision tower included, through the model, logits everywhere) and the cached-
prefix step of `fast.py` (same batches, same loss, same gradients up to float rounding). Not here:
compiled steps (measured in `benchmarks/train_speed.py`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from PIL import Image, ImageOps

from yollava_agent.concept import Concept, validate_concept_name
from yollava_agent.errors import YoLLaVAError
from yollava_agent.prompts import concept_prompt, insert_prompt_text
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.templates import answer_token_ids, prompt_and_answer
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import (
    SUBJECT_IN_PHOTO,
    Sample,
    attribute_questions,
    recognition_samples,
    text_samples,
)
from yollava_agent.training.eta import RemainingTime
from yollava_agent.training.fast import FastPath, stack_views, unsupported_reason
from yollava_agent.training.latent_init import image_token_rows

logger = logging.getLogger(__name__)

LabeledImage = tuple[str, Image.Image]

MIN_YES_SHARE = 0.5
"""Below this share of "yes" on its positive turns a run has collapsed into "always no": it did
not fit (the restart check), and latent rows moved back that fall below it are not kept."""


class TrainingCancelled(YoLLaVAError):
    """Training was cancelled; nothing was written."""


@dataclass(frozen=True)
class TrainingEvent:
    """Progress of a training run, reported after every step."""

    epoch: int
    """1-based epoch."""
    epochs: int
    step: int
    """1-based step within the epoch."""
    steps_per_epoch: int
    loss: float
    """Mean loss of the epoch so far."""
    accuracy: float | None
    """Recognition accuracy of the epoch so far (None before the first recognition turn)."""
    elapsed_seconds: float
    eta_seconds: float
    """Of this attempt."""
    attempt: int = 1
    """1-based: above 1, the earlier attempts did not fit their training turns and this one
    restarted."""


@dataclass
class _Encoded:
    input_ids: list[int]
    answer_start: int
    photo: int | None
    kind: str


@dataclass
class TrainingReport:
    """What a run measured, stored in the concept's `training` field."""

    epoch_losses: list[float] = field(default_factory=list)
    epoch_accuracies: list[float | None] = field(default_factory=list)
    epoch_positive_accuracies: list[float | None] = field(default_factory=list)
    """Per epoch: the share of positive turns answered "Yes"."""
    epoch_kind_losses: list[dict[str, float]] = field(default_factory=list)
    """Per epoch, per kind of turn ("positive", "negative", "text"): the mean cross-entropy per
    answer token. Whether the text-only turns fit shows here, not in the accuracies, which judge
    recognition turns only."""
    best_epoch: int = 0
    seed: int = 0
    """The kept run's seed (above `TrainingConfig.seed` after a restart)."""
    unfit: list[dict[str, Any]] = field(default_factory=list)
    """Attempts that did not fit their training turns and were not kept (`TrainingConfig.restarts`):
    each one's seed, kept epoch and its accuracies."""
    samples: dict[str, int] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    latent_interpolation: float = 1.0
    """Where the kept latent rows lie between their start (0) and as trained (1): the config's
    `latent_interpolation` when the rows moved there still fit the training turns, else 1."""

    @property
    def best_accuracy(self) -> float | None:
        return self.epoch_accuracies[self.best_epoch - 1] if self.best_epoch else None

    @property
    def best_positive_accuracy(self) -> float | None:
        return self.epoch_positive_accuracies[self.best_epoch - 1] if self.best_epoch else None

    def unfit_reason(self, name: str, min_accuracy: float) -> str | None:
        """Why this run did not fit its training turns (None when it did): its kept epoch said
        "yes" to under half of the positive turns ("always no"), or scored under
        `min_accuracy`."""
        recall, accuracy = self.best_positive_accuracy, self.best_accuracy
        if recall is not None and recall < MIN_YES_SHARE:
            return (
                f"Concept {name!r} did not learn to say 'yes' to its photos (seed {self.seed}: "
                f"'yes' to {100 * recall:.0f}% of their turns)"
            )
        if accuracy is not None and accuracy < min_accuracy:
            return (
                f"Concept {name!r} did not fit its training turns (seed {self.seed}: "
                f"{100 * accuracy:.0f}% right, under {100 * min_accuracy:.0f}%)"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": len(self.epoch_losses),
            "epoch_losses": self.epoch_losses,
            "epoch_accuracies": self.epoch_accuracies,
            "best_epoch": self.best_epoch,
            "seed": self.seed,
            "best_accuracy": self.best_accuracy,
            "epoch_positive_accuracies": self.epoch_positive_accuracies,
            "epoch_kind_losses": self.epoch_kind_losses,
            "best_positive_accuracy": self.best_positive_accuracy,
            "unfit": self.unfit,
            "samples": self.samples,
            "phase_seconds": {k: round(v, 3) for k, v in self.phase_seconds.items()},
            "seconds": round(self.seconds, 2),
            "latent_interpolation": self.latent_interpolation,
        }


def check_new_concept_name(runtime: LlavaRuntime, name: str, num_latent_tokens: int) -> None:
    """Refuse names that are unsafe or whose tokens the base vocabulary already has."""
    validate_concept_name(name, runtime.base_vocabulary, num_latent_tokens, runtime.model_id)


def mean_start_rows(
    weights: Sequence[torch.Tensor], vocab_size: int, count: int, seed: int
) -> list[torch.Tensor]:
    """For each matrix, `count` rows of its first `vocab_size` rows' mean plus small noise (a
    tenth of their spread), all drawn from one generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for weight in weights:
        base = weight[:vocab_size].detach().float().cpu()
        noise = torch.randn((count, base.shape[1]), generator=generator)
        rows.append(base.mean(0) + noise * base.std(0) * 0.1)
    return rows


def initial_concept(
    runtime: LlavaRuntime,
    name: str,
    num_latent_tokens: int,
    seed: int,
    latent_rows: torch.Tensor | None = None,
) -> Concept:
    """Rows to start from: the mean base row plus small seeded noise, for inputs and outputs
    (one set for both on a tied base); the latent input rows are `latent_rows` when given."""
    rows = mean_start_rows(
        (runtime.model.get_input_embeddings().weight, runtime.model.get_output_embeddings().weight),
        runtime.base.vocab_size,
        num_latent_tokens + 1,
        seed,
    )
    if latent_rows is not None:
        rows[0][1:] = latent_rows
    inputs, outputs = rows[0], rows[0] if runtime.tied_embeddings else rows[1]
    return Concept(name=name, input_embeddings=inputs, output_embeddings=outputs, base=runtime.base)


class _ConceptRows(torch.nn.Module):
    """The trainable rows, and the hooks that splice them into the frozen model.

    On a tied base `output_rows` is `input_rows`: one parameter, whose gradient sums both uses.
    """

    def __init__(self, concept: Concept, first_id: int) -> None:
        super().__init__()
        self.input_rows = torch.nn.Parameter(concept.input_embeddings.detach().float().clone())
        self.output_rows = (
            self.input_rows
            if concept.base.tied_embeddings
            else torch.nn.Parameter(concept.output_embeddings.detach().float().clone())
        )
        self.first_id = first_id
        self.count = self.input_rows.shape[0]

    def embed_hook(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        ids = args[0]
        offset = ids - self.first_id
        is_concept = (offset >= 0) & (offset < self.count)
        rows = self.input_rows.to(output.dtype)[offset.clamp(0, self.count - 1)]
        return torch.where(is_concept.unsqueeze(-1), rows, output)

    def head_hook(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        hidden = args[0]
        concept_logits = hidden @ self.output_rows.to(hidden.dtype).T
        end = self.first_id + self.count
        return torch.cat([output[..., : self.first_id], concept_logits, output[..., end:]], dim=-1)

    @contextmanager
    def spliced(self, runtime: LlavaRuntime) -> Iterator[None]:
        handles = [
            runtime.model.get_input_embeddings().register_forward_hook(self.embed_hook),
            runtime.model.get_output_embeddings().register_forward_hook(self.head_hook),
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def describe_photos(
    runtime: LlavaRuntime, photos: Sequence[LabeledImage], questions: Sequence[str], max_tokens: int
) -> list[list[str]]:
    """The base model's answers to each question about each photo (one batched call per photo)."""
    processor, tokenizer = runtime.processor, runtime.tokenizer
    prompts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q.format(c=SUBJECT_IN_PHOTO)}]}],
            add_generation_prompt=True,
        )
        for q in questions
    ]
    answers = []
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for _, photo in photos:
            inputs = processor(text=prompts, images=[photo] * len(prompts), padding=True, return_tensors="pt")
            inputs = {k: v.to(runtime.device) for k, v in inputs.items()}
            inputs["pixel_values"] = inputs["pixel_values"].to(runtime.dtype)
            with torch.inference_mode():
                output = runtime.model.generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            answers.append([t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)])
    finally:
        tokenizer.padding_side = padding_side
    return answers


class _Encoder:
    """Turns samples into token ids with the answer span marked, and photos into pixel values.

    Each photo is processed once, with its mirror image (the flipped view): its pixel values (for
    LLaVA-NeXT and OneVision one tensor of tiles per view, and the photo's size) and its number of
    image tokens, which those families vary with the photo's shape.
    """

    def __init__(self, runtime: LlavaRuntime, name: str, num_latent_tokens: int) -> None:
        self.runtime = runtime
        self.processor = runtime.processor
        self.tokenizer = runtime.tokenizer
        self.name = name
        self.prompt = concept_prompt(name, num_latent_tokens)
        self.image_token = self.processor.image_token
        self.photos: dict[int, torch.Tensor] = {}
        """Per photo: pixel values of its two views (as shot, mirrored)."""
        self.image_sizes: dict[int, torch.Tensor] = {}
        """Per photo: (height, width) of its two views, for the families that tile photos."""
        self.image_tokens: dict[int, int] = {}
        self._photo_ids: dict[int, int] = {}

    def photo_index(self, image: Image.Image) -> int:
        key = id(image)
        if key not in self._photo_ids:
            index = len(self._photo_ids)
            self._photo_ids[key] = index
            views = self.processor.image_processor(
                images=[image, ImageOps.mirror(image)], return_tensors="pt"
            )
            self.photos[index] = views["pixel_values"]
            if "image_sizes" in views:
                self.image_sizes[index] = views["image_sizes"]
            expanded = self.processor(text=self.image_token, images=[image], return_tensors="pt")
            image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
            self.image_tokens[index] = int((expanded["input_ids"] == image_id).sum())
        return self._photo_ids[key]

    def encode(self, sample: Sample) -> _Encoded:
        photo = self.photo_index(sample.image) if sample.image is not None else None
        content = [{"type": "image"}] if photo is not None else []
        content.append({"type": "text", "text": sample.question})
        user = insert_prompt_text({"role": "user", "content": content}, self.prompt)
        model_id = self.runtime.model_id
        prompt, answer = prompt_and_answer(self.processor, [user], sample.answer, model_id)
        if photo is not None:
            prompt = prompt.replace(self.image_token, self.image_token * self.image_tokens[photo])
        prompt_ids, answer_ids = answer_token_ids(self.tokenizer, prompt, answer, model_id)
        if answer_ids[-1] != self.tokenizer.eos_token_id:
            answer_ids.append(self.tokenizer.eos_token_id)
        return _Encoded(prompt_ids + answer_ids, len(prompt_ids), photo, sample.kind)


def _batch(encoded: Sequence[_Encoded], encoder: _Encoder, flips: Sequence[bool], pad_id: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    length = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), length), dtype=torch.long)
    labels = torch.full((len(encoded), length), -100, dtype=torch.long)
    pixels, sizes = [], []
    for row, (item, flip) in enumerate(zip(encoded, flips, strict=True)):
        ids = torch.tensor(item.input_ids)
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        labels[row, item.answer_start : len(ids)] = ids[item.answer_start :]
        if item.photo is not None:
            pixels.append(encoder.photos[item.photo][int(flip)])
            if item.photo in encoder.image_sizes:
                sizes.append(encoder.image_sizes[item.photo][int(flip)])
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    batch = {k: v.to(device) for k, v in batch.items()}
    if pixels:
        batch["pixel_values"] = stack_views(pixels).to(device, dtype)
    if sizes:
        batch["image_sizes"] = torch.stack(sizes).to(device)
    return batch


StepHits = list[bool | None]
"""Per row of a step: whether its first answer token was right (None: a text turn, not judged)."""
StepFunction = Callable[
    [Sequence[_Encoded], Sequence[bool]], tuple[torch.Tensor, StepHits, list[float]]
]
"""One step's loss (mean cross-entropy over every answer token of the batch), its hits, and per
row the summed cross-entropy of its answer tokens (for the report's loss per kind of turn)."""


def full_sequence_logits(
    runtime: LlavaRuntime,
    encoder: _Encoder,
    chosen: Sequence[_Encoded],
    flips: Sequence[bool],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 logits, labels) of the reference step's forward: what training optimises. Call it
    inside `_ConceptRows.spliced`."""
    batch = _batch(chosen, encoder, flips, pad_id, runtime.device, runtime.dtype)
    labels = batch.pop("labels")
    return runtime.model(**batch).logits.float(), labels


def _full_sequence_step(
    runtime: LlavaRuntime, encoder: _Encoder, chosen: Sequence[_Encoded], flips: Sequence[bool], pad_id: int
) -> tuple[torch.Tensor, StepHits, list[float]]:
    """The reference step: whole sequences through the model (vision tower included), logits everywhere."""
    logits, labels = full_sequence_logits(runtime, encoder, chosen, flips, pad_id)
    targets = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )
    hits: StepHits = []
    with torch.no_grad():
        for row, item in enumerate(chosen):
            first = item.answer_start
            right = bool(logits[row, first - 1].argmax() == labels[row, first])
            hits.append(None if item.kind == "text" else right)
        per_token = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
    return loss, hits, per_token.sum(dim=1).tolist()


def _step_function(
    runtime: LlavaRuntime, rows: _ConceptRows, encoder: _Encoder, encoded: list[_Encoded], config: TrainingConfig
) -> StepFunction:
    """The fast cached-prefix step when `config.fast` (and the samples allow it), else the reference."""
    pad_id = runtime.tokenizer.pad_token_id or runtime.tokenizer.eos_token_id
    if config.fast:
        reason = unsupported_reason(runtime, encoded, rows.first_id, rows.count)
        if reason is None:
            return FastPath(
                runtime,
                encoder,
                encoded,
                rows.first_id,
                rows.count,
                cache_device=config.prefix_cache_device,
                cache_dtype=getattr(torch, config.prefix_cache_dtype) if config.prefix_cache_dtype else None,
                cache_bytes=None if config.prefix_cache_gib is None else int(config.prefix_cache_gib * 2**30),
            )
        logger.warning("Fast training path unavailable (%s): using the full-sequence path.", reason)
    return lambda chosen, flips: _full_sequence_step(runtime, encoder, chosen, flips, pad_id)


def train_concept(
    runtime: LlavaRuntime,
    name: str,
    positives: Sequence[LabeledImage],
    negatives: Sequence[LabeledImage],
    config: TrainingConfig | None = None,
    on_event: Callable[[TrainingEvent], None] | None = None,
    cancel: threading.Event | None = None,
    description: str = "",
) -> Concept:
    """Train a concept on a loaded base and return it (nothing is written to disk here).

    Raises `TrainingCancelled` when `cancel` is set; the runtime is left with the concepts it had.
    """
    config = config or TrainingConfig()
    check_new_concept_name(runtime, name, config.num_latent_tokens)
    if not positives:
        msg = f"Teaching {name!r} needs at least one photo of it; none were given."
        raise ValueError(msg)
    started = time.monotonic()
    with runtime.lock:
        previous = list(runtime.injected.values())
        try:
            runtime.set_concepts([])
            questions = attribute_questions(config.subject_kind)
            answers = describe_photos(runtime, positives, questions, config.attribute_answer_tokens)
            described = time.monotonic() - started
            kept: tuple[TrainingReport, tuple[torch.Tensor, torch.Tensor]] | None = None
            unfit: list[dict[str, Any]] = []
            for attempt in range(1, config.restarts + 2):
                seed = config.seed + attempt - 1
                report = TrainingReport(seed=seed, phase_seconds={"describe": described})
                best = _attempt(
                    runtime, name, positives, negatives, questions, answers, config, seed, attempt,
                    report, on_event, cancel, started,
                )
                reason = report.unfit_reason(name, config.restart_below_accuracy)
                score = report.best_accuracy or 0.0
                better = kept is None or score > (kept[0].best_accuracy or 0.0)
                if better or reason is None:
                    kept = (report, best)
                if reason is None:
                    break
                unfit.append(
                    {
                        "seed": seed,
                        "best_epoch": report.best_epoch,
                        "best_accuracy": report.best_accuracy,
                        "best_positive_accuracy": report.best_positive_accuracy,
                    }
                )
                if attempt <= config.restarts:
                    logger.warning("%s; training again from seed %d.", reason, seed + 1)
        finally:
            runtime.set_concepts(previous)
    assert kept is not None  # range(1, restarts + 2) is never empty
    report, best = kept
    report.unfit = [u for u in unfit if u["seed"] != report.seed]
    report.seconds = time.monotonic() - started
    return Concept(
        name=name,
        input_embeddings=best[0],
        output_embeddings=best[1],
        base=runtime.base,
        description=description,
        training=report.as_dict(),
    )


def _attempt(
    runtime: LlavaRuntime,
    name: str,
    positives: Sequence[LabeledImage],
    negatives: Sequence[LabeledImage],
    questions: Sequence[str],
    answers: Sequence[str],
    config: TrainingConfig,
    seed: int,
    attempt: int,
    report: TrainingReport,
    on_event: Callable[[TrainingEvent], None] | None,
    cancel: threading.Event | None,
    started: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training run from `seed`: its start, its turns, its epochs; the kept rows."""
    attempt_started = time.monotonic()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    latent_rows = None
    if config.latent_init == "image" and config.num_latent_tokens:
        photos = [photo for _, photo in positives]
        latent_rows = image_token_rows(runtime, photos, config.num_latent_tokens, seed)
    initial = initial_concept(runtime, name, config.num_latent_tokens, seed, latent_rows)
    runtime.set_concepts([initial])
    identifier = initial.identifier
    samples = recognition_samples(
        identifier, list(positives), list(negatives), config.turns_per_positive, rng
    ) + text_samples(identifier, questions, answers)
    report.samples = {
        kind: sum(s.kind == kind for s in samples) for kind in ("positive", "negative", "text")
    }
    encoder = _Encoder(runtime, name, config.num_latent_tokens)
    encoded = [encoder.encode(sample) for sample in samples]
    report.phase_seconds["encode"] = time.monotonic() - attempt_started
    rows = _ConceptRows(initial, runtime.token_ids(name)[0])
    training_started = time.monotonic()
    rows.to(runtime.device)
    step_function = _step_function(runtime, rows, encoder, encoded, config)
    best = _train_rows(
        runtime, rows, step_function, encoder, encoded, config, rng, report, on_event, cancel,
        started, attempt,
    )
    if config.latent_interpolation < 1.0:
        with rows.spliced(runtime):
            best = _moved_back_if_it_fits(
                rows, initial.input_embeddings, best, step_function, encoded, config, report
            )
    report.phase_seconds["train"] = time.monotonic() - training_started
    return best


def _interpolate_latent_rows(
    start: torch.Tensor, kept: tuple[torch.Tensor, torch.Tensor], interpolation: float, tied: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`kept` with its latent input rows at start + `interpolation` x (kept - start), `start`
    the input rows the run began from; on a tied base the output rows are the input rows, so
    they move too."""
    inputs, outputs = kept
    moved = inputs.clone()
    begin = start[1:].to(moved.dtype)
    moved[1:] = begin + interpolation * (inputs[1:] - begin)
    return moved, moved.clone() if tied else outputs


def _recognition_fit(
    step_function: StepFunction, encoded: Sequence[_Encoded], batch_size: int
) -> tuple[float | None, float | None]:
    """With the rows as they are now, unflipped: (share of positive turns answered "yes", share
    of recognition turns answered right)."""
    turns = [item for item in encoded if item.kind != "text"]
    right, said_yes = [], []
    with torch.no_grad():
        for first in range(0, len(turns), batch_size):
            chosen = turns[first : first + batch_size]
            _, hits, _ = step_function(chosen, [False] * len(chosen))
            for item, hit in zip(chosen, hits, strict=True):
                right.append(bool(hit))
                if item.kind == "positive":
                    said_yes.append(bool(hit))
    return _share(said_yes), _share(right)


def _share(hits: Sequence[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def _moved_back_if_it_fits(
    rows: _ConceptRows,
    start: torch.Tensor,
    best: tuple[torch.Tensor, torch.Tensor],
    step_function: StepFunction,
    encoded: Sequence[_Encoded],
    config: TrainingConfig,
    report: TrainingReport,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`best` with its latent rows moved back by `config.latent_interpolation` when the moved rows
    still fit the training turns as the restart check defines it ("yes" to at least half of the
    positive turns, `restart_below_accuracy` of all recognition turns right; a bar the trained
    rows miss themselves is lowered to theirs), else as trained."""
    tied = rows.output_rows is rows.input_rows
    moved = _interpolate_latent_rows(start, best, config.latent_interpolation, tied)
    fit = {}
    for name, kept in (("trained", best), ("moved", moved)):
        with torch.no_grad():
            rows.input_rows.copy_(kept[0].to(rows.input_rows.device))
            if not tied:
                rows.output_rows.copy_(kept[1].to(rows.output_rows.device))
        fit[name] = _recognition_fit(step_function, encoded, config.batch_size)
    bars = (MIN_YES_SHARE, config.restart_below_accuracy)
    fits = all(
        moved_value is None or moved_value >= min(bar, trained_value or 0.0)
        for moved_value, trained_value, bar in zip(fit["moved"], fit["trained"], bars, strict=True)
    )
    report.latent_interpolation = config.latent_interpolation if fits else 1.0
    return moved if fits else best


def _train_rows(
    runtime: LlavaRuntime,
    rows: _ConceptRows,
    step_function: StepFunction,
    encoder: _Encoder,
    encoded: list[_Encoded],
    config: TrainingConfig,
    rng: random.Random,
    report: TrainingReport,
    on_event: Callable[[TrainingEvent], None] | None,
    cancel: threading.Event | None,
    started: float,
    attempt: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    groups = [{"params": [rows.input_rows], "lr": config.learning_rate}]
    if rows.output_rows is not rows.input_rows:
        output_lr = config.output_learning_rate or config.learning_rate
        groups.append({"params": [rows.output_rows], "lr": output_lr})
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = (len(encoded) + config.batch_size - 1) // config.batch_size
    remaining = RemainingTime(config.epochs * steps)
    best: tuple[torch.Tensor, torch.Tensor] | None = None
    best_accuracy = -1.0
    with rows.spliced(runtime):
        for epoch in range(1, config.epochs + 1):
            order = list(range(len(encoded)))
            rng.shuffle(order)
            loss_sum, correct, judged, said_yes, positive_turns = 0.0, 0, 0, 0, 0
            kind_losses: dict[str, float] = defaultdict(float)
            kind_tokens: dict[str, int] = defaultdict(int)
            for step in range(1, steps + 1):
                if cancel is not None and cancel.is_set():
                    msg = f"Training of concept {encoder.name!r} was cancelled; nothing was saved."
                    raise TrainingCancelled(msg)
                chosen = [encoded[i] for i in order[(step - 1) * config.batch_size : step * config.batch_size]]
                flips = [rng.random() < config.flip_probability for _ in chosen]
                loss, hits, row_losses = step_function(chosen, flips)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item()
                for item, row_loss in zip(chosen, row_losses, strict=True):
                    kind_losses[item.kind] += row_loss
                    kind_tokens[item.kind] += len(item.input_ids) - item.answer_start
                for item, hit in zip(chosen, hits, strict=True):
                    if hit is None:
                        continue
                    judged += 1
                    correct += hit
                    if item.kind == "positive":
                        positive_turns += 1
                        said_yes += hit
                if on_event is not None:
                    done = (epoch - 1) * steps + step
                    elapsed = time.monotonic() - started
                    on_event(
                        TrainingEvent(
                            epoch=epoch,
                            epochs=config.epochs,
                            step=step,
                            steps_per_epoch=steps,
                            loss=loss_sum / step,
                            accuracy=correct / judged if judged else None,
                            elapsed_seconds=elapsed,
                            eta_seconds=remaining.after(done),
                            attempt=attempt,
                        )
                    )
            accuracy = correct / judged if judged else None
            report.epoch_losses.append(round(loss_sum / steps, 5))
            report.epoch_accuracies.append(accuracy)
            report.epoch_positive_accuracies.append(
                said_yes / positive_turns if positive_turns else None
            )
            by_kind = {k: round(kind_losses[k] / kind_tokens[k], 5) for k in sorted(kind_losses)}
            report.epoch_kind_losses.append(by_kind)
            logger.info(
                "epoch %d/%d loss %.4f accuracy %s loss per kind %s",
                epoch, config.epochs, loss_sum / steps, accuracy, by_kind,
            )
            eligible = epoch > config.warmup_epochs or epoch == config.epochs and best is None
            if eligible and (accuracy or 0.0) >= best_accuracy:
                best_accuracy = accuracy or 0.0
                report.best_epoch = epoch
                best = (rows.input_rows.detach().cpu().clone(), rows.output_rows.detach().cpu().clone())
    assert best is not None  # the last epoch is always eligible when none was
    return best
