"""The fast (cached-prefix) training step against the full-sequence reference, on the tiny model in fp32.

Both paths get the very same batches (same samples, same flips); the fast path then computes each
batch differently: vision features and prefix keys/values once per photo view, only suffixes per
step, logits at answer tokens only. Everything here compares like with like:
- one step: the same loss and the same gradients on the concept's input and output rows (relative
  error < 1e-5), the same first-token recognition hits and the same loss per row (whose sum over
  the batch's answer tokens is the step's loss), for several batch compositions;
- several AdamW steps on the same batches: the same trained rows (< 1e-5);
- `train_concept` with `fast=True` and `fast=False`: the same per-epoch losses, accuracies and best
  epoch (its batches are composed identically by construction: same shuffle, same flips). The tiny
  random model never learns to answer "Yes"/"No" first, so its accuracies are all 0 there: recognition
  hits are checked on crafted turns instead (`test_first_token_hits_agree`);
- the base model stays bit-identical after fast training.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from tests.conftest import make_photo
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import attribute_questions, recognition_samples, text_samples
from yollava_agent.training.fast import FastPath, unsupported_reason
from yollava_agent.training.trainer import (
    _batch,
    _ConceptRows,
    _Encoded,
    _Encoder,
    _full_sequence_step,
    initial_concept,
    train_concept,
)

TOLERANCE = 1e-5
SMALL = TrainingConfig(
    epochs=3,
    batch_size=4,
    warmup_epochs=1,
    turns_per_positive=3,
    attribute_answer_tokens=4,
    learning_rate=1e-2,
)


def _photos(count: int, blue: bool = False) -> list[tuple[str, object]]:
    return [
        (
            f"{'n' if blue else 'p'}{i}.png",
            make_photo((30, 40 + 9 * i, 220) if blue else (220, 40 + 9 * i, 30)),
        )
        for i in range(count)
    ]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture
def setup(runtime):
    """Concept rows, encoder and encoded samples: 2 positive photos x 3 turns, 2 negatives, 3 text turns."""
    initial = initial_concept(runtime, "bo", 16, seed=0)
    runtime.set_concepts([initial])
    rng = random.Random(0)
    questions = attribute_questions("object")[:3]
    samples = recognition_samples(initial.identifier, _photos(2), _photos(2, blue=True), 3, rng)
    samples += text_samples(
        initial.identifier,
        questions,
        [["It is red and round.", "Round, with a handle.", "Glazed ceramic."]],
    )
    encoder = _Encoder(runtime, "bo", 16)
    encoded = [encoder.encode(sample) for sample in samples]
    rows = _ConceptRows(initial, runtime.token_ids("bo")[0])
    return rows, encoder, encoded


def _fast(runtime, rows, encoder, encoded, **kwargs) -> FastPath:
    return FastPath(runtime, encoder, encoded, rows.first_id, rows.count, **kwargs)


def _reference(runtime, encoder):
    pad_id = runtime.tokenizer.pad_token_id or runtime.tokenizer.eos_token_id
    return lambda chosen, flips: _full_sequence_step(runtime, encoder, chosen, flips, pad_id)


def _loss_and_grads(runtime, rows, step, chosen, flips):
    rows.zero_grad(set_to_none=True)
    with rows.spliced(runtime):
        loss, hits, row_losses = step(chosen, flips)
        loss.backward()
    return (
        loss.detach(),
        rows.input_rows.grad.clone(),
        rows.output_rows.grad.clone(),
        hits,
        row_losses,
    )


# Indices into the fixture's 11 samples: 0-2 photo p0, 3-5 photo p1, 6-7 negatives, 8-10 text.
BATCHES = {
    "mixed: both photos flipped and not, negatives, text": (
        list(range(11)),
        [0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0],
    ),
    "one photo view shared by the batch (expanded prefix)": ([0, 1, 2], [1, 1, 1]),
    "text only": ([8, 9, 10], [1, 0, 1]),
    "one sample": ([4], [0]),
    "suffixes of different lengths, a negative and a text turn": ([2, 7, 9, 3], [0, 0, 0, 1]),
}


@pytest.mark.parametrize("name", list(BATCHES))
def test_one_step_same_loss_and_gradients(runtime, setup, name: str) -> None:
    rows, encoder, encoded = setup
    indices, flips = BATCHES[name]
    chosen = [encoded[i] for i in indices]
    flips = [bool(f) for f in flips]
    ref = _loss_and_grads(runtime, rows, _reference(runtime, encoder), chosen, flips)
    fast = _loss_and_grads(runtime, rows, _fast(runtime, rows, encoder, encoded), chosen, flips)

    assert abs(float(fast[0] - ref[0])) / abs(float(ref[0])) < TOLERANCE
    assert ref[1].norm() > 0 and ref[2].norm() > 0
    assert _relative(fast[1], ref[1]) < TOLERANCE, "input-row gradients differ"
    assert _relative(fast[2], ref[2]) < TOLERANCE, "output-row gradients differ"
    assert fast[3] == ref[3], "first-token recognition hits differ"
    assert _relative(torch.tensor(fast[4]), torch.tensor(ref[4])) < TOLERANCE, "row losses differ"
    # Each row's summed answer-token loss, over the batch's answer tokens, is the step's loss.
    tokens = sum(len(item.input_ids) - item.answer_start for item in chosen)
    assert abs(sum(ref[4]) / tokens - float(ref[0])) / float(ref[0]) < TOLERANCE


def test_first_token_hits_agree(runtime, setup) -> None:
    """Recognition hits on both paths, with some turns made to hit (the tiny model never says "Yes")."""
    rows, encoder, encoded = setup
    chosen, flips = (
        [encoded[i] for i in (0, 1, 3, 4, 6, 7, 8)],
        [False, True, True, False, False, True, False],
    )
    pad_id = runtime.tokenizer.pad_token_id or runtime.tokenizer.eos_token_id
    with rows.spliced(runtime), torch.no_grad():
        batch = _batch(chosen, encoder, flips, pad_id, runtime.device, runtime.dtype)
        logits = runtime.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
        ).logits
    # The prediction at answer_start - 1 does not depend on the answer: make every other turn right.
    crafted = list(encoded)
    for row, item in enumerate(chosen):
        if row % 2 == 0:
            ids = list(item.input_ids)
            ids[item.answer_start] = int(logits[row, item.answer_start - 1].argmax())
            crafted[encoded.index(item)] = chosen[row] = _Encoded(
                ids, item.answer_start, item.photo, item.kind
            )
    ref = _loss_and_grads(runtime, rows, _reference(runtime, encoder), chosen, flips)
    fast = _loss_and_grads(runtime, rows, _fast(runtime, rows, encoder, crafted), chosen, flips)
    # Rows 0, 2, 4 hit, 1, 3, 5 miss; row 6 (text) is not judged.
    assert ref[3] == fast[3] == [True, False, True, False, True, False, None]
    assert _relative(fast[1], ref[1]) < TOLERANCE


def test_flip_changes_the_prefix(runtime, setup) -> None:
    """The cache keys on the flip: a flipped photo gives another loss, on both paths alike."""
    rows, encoder, encoded = setup
    fast = _fast(runtime, rows, encoder, encoded)
    plain = _loss_and_grads(runtime, rows, fast, [encoded[0]], [False])[0]
    flipped = _loss_and_grads(runtime, rows, fast, [encoded[0]], [True])[0]
    reference = _loss_and_grads(runtime, rows, _reference(runtime, encoder), [encoded[0]], [True])[
        0
    ]
    assert plain != flipped
    assert abs(float(flipped - reference)) / float(reference) < TOLERANCE


def _train(runtime, rows, step, batches, lr=1e-2):
    optimizer = torch.optim.AdamW(rows.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    with rows.spliced(runtime):
        for chosen, flips in batches:
            loss = step(chosen, flips)[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "storage",
    [{}, {"cache_bytes": 0}, {"cache_device": "cpu", "cache_bytes": 40_000}],
    ids=["all prefixes kept", "nothing kept: rebuilt from kept features", "partly kept"],
)
def test_optimizer_steps_give_the_same_rows(runtime, setup, storage: dict) -> None:
    rows, encoder, encoded = setup
    twin = copy.deepcopy(rows)
    rng = random.Random(3)
    batches = []
    for _ in range(6):
        indices = rng.sample(range(len(encoded)), 5)
        batches.append(([encoded[i] for i in indices], [rng.random() < 0.5 for _ in indices]))

    reference = _train(runtime, rows, _reference(runtime, encoder), batches)
    fast_path = _fast(runtime, twin, encoder, encoded, **storage)
    fast = _train(runtime, twin, fast_path, batches)

    assert max(abs(a - b) / b for a, b in zip(fast, reference, strict=True)) < TOLERANCE
    assert _relative(twin.input_rows.detach(), rows.input_rows.detach()) < TOLERANCE
    assert _relative(twin.output_rows.detach(), rows.output_rows.detach()) < TOLERANCE

    keys = {
        (fast_path._plans[id(item)].prefix, item.photo, flip if item.photo is not None else False)
        for chosen, flips in batches
        for item, flip in zip(chosen, flips, strict=True)
    }
    views = {key[1:] for key in keys if key[1] is not None}
    stats = fast_path.stats
    assert stats.vision_images == len(views), "a photo view went through the vision tower twice"
    if not storage:
        assert stats.prefix_builds == len(keys), "a kept prefix was built twice"
        assert stats.prefix_hits > 0
    if storage.get("cache_bytes") == 0:
        assert stats.kept_prefixes == 0 and stats.prefix_builds > len(keys)


def test_logits_only_at_answer_tokens(runtime, setup) -> None:
    rows, encoder, encoded = setup
    chosen = [encoded[i] for i in (0, 4, 7, 9)]
    shapes = []
    handle = runtime.model.get_output_embeddings().register_forward_hook(
        lambda module, args, output: shapes.append(tuple(output.shape))
    )
    try:
        _loss_and_grads(runtime, rows, _fast(runtime, rows, encoder, encoded), chosen, [False] * 4)
    finally:
        handle.remove()
    answer_tokens = sum(len(item.input_ids) - item.answer_start for item in chosen)
    assert sum(shape[0] for shape in shapes) == answer_tokens
    assert all(
        len(shape) == 2 and shape[1] == runtime.model.get_output_embeddings().weight.shape[0]
        for shape in shapes
    )


def test_train_concept_fast_matches_reference(runtime) -> None:
    positives, negatives = _photos(3), _photos(4, blue=True)
    reference = train_concept(
        runtime, "bo", positives, negatives, TrainingConfig(**{**SMALL.__dict__, "fast": False})
    )
    fast = train_concept(runtime, "bo", positives, negatives, SMALL)

    ref_stats, fast_stats = reference.training, fast.training
    assert fast_stats["samples"] == ref_stats["samples"]
    assert fast_stats["epoch_accuracies"] == ref_stats["epoch_accuracies"]
    assert fast_stats["best_epoch"] == ref_stats["best_epoch"]
    # Epoch losses are stored rounded to 5 decimals; the unrounded ones agree to ~1e-7.
    assert fast_stats["epoch_losses"] == pytest.approx(ref_stats["epoch_losses"], abs=1.5e-5)
    assert _relative(fast.input_embeddings, reference.input_embeddings) < TOLERANCE
    assert _relative(fast.output_embeddings, reference.output_embeddings) < TOLERANCE


def test_base_model_bit_identical_after_fast_training(runtime) -> None:
    before = {k: v.clone() for k, v in runtime.model.state_dict().items()}
    config = TrainingConfig(**{**SMALL.__dict__, "prefix_cache_gib": 1e-5})
    train_concept(runtime, "bo", _photos(2), _photos(3, blue=True), config)
    after = runtime.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "a base parameter changed"
    assert runtime.injected == {}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn])
def test_smaller_cache_dtype_is_close_not_exact(runtime, setup, dtype: torch.dtype) -> None:
    rows, encoder, encoded = setup
    chosen, flips = [encoded[i] for i in range(11)], [False] * 11
    ref = _loss_and_grads(runtime, rows, _reference(runtime, encoder), chosen, flips)
    fast = _fast(runtime, rows, encoder, encoded, cache_dtype=dtype)
    first = _loss_and_grads(runtime, rows, fast, chosen, flips)  # uses the fresh fp32 prefixes
    small = _loss_and_grads(runtime, rows, fast, chosen, flips)  # reads the kept, smaller copies
    assert abs(float(first[0] - ref[0])) / float(ref[0]) < TOLERANCE
    text = runtime.model.config.text_config
    per_token = (
        2
        * text.num_hidden_layers
        * text.num_key_value_heads
        * (text.hidden_size // text.num_attention_heads)
    )
    kept_tokens = sum(len(fast._prefix_ids[key[0]]) for key in fast._kept)
    assert fast.stats.kept_bytes == kept_tokens * per_token * dtype.itemsize
    assert small[0] != first[0]
    # Measured: bf16 1e-6 (loss) / 2e-4 (gradients), float8_e4m3fn 2e-5 / 5e-3.
    assert abs(float(small[0] - ref[0])) / float(ref[0]) < 1e-3
    assert _relative(small[1], ref[1]) < 5e-2 and _relative(small[2], ref[2]) < 5e-2


def test_unsupported_layouts_are_detected(runtime, setup) -> None:
    rows, _, encoded = setup
    assert unsupported_reason(runtime, encoded, rows.first_id, rows.count) is None
    image_id = runtime.model.config.image_token_id
    item = encoded[0]
    split = item.input_ids.index(rows.first_id)
    moved = [t for t in item.input_ids[:split] if t != image_id] + item.input_ids[split:]
    moved.insert(len(moved) - 3, image_id)
    bad = _Encoded(moved, item.answer_start, item.photo, item.kind)
    assert "image token comes after the concept prompt" in unsupported_reason(
        runtime, [bad], rows.first_id, rows.count
    )


def test_config_checks_cache_settings() -> None:
    with pytest.raises(ValueError, match=r"prefix_cache_dtype must name a torch dtype.*'float7'"):
        TrainingConfig(prefix_cache_dtype="float7")
    with pytest.raises(ValueError, match=r"prefix_cache_gib must be >= 0 or None, got -1"):
        TrainingConfig(prefix_cache_gib=-1)
    assert TrainingConfig().fast is True
