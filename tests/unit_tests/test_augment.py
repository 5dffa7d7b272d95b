"""Shifted copies: the same subject, moved and resized, at the photo's size, nothing invented."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from yollava_agent.training.augment import MAX_SHIFT, ZOOM_RANGE, shifted_copy, with_shifted_copies

SIDE = 64
SQUARE = 12


def _subject_in_the_middle() -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), (40, 40, 40))
    start = (SIDE - SQUARE) // 2
    image.paste((230, 20, 20), (start, start, start + SQUARE, start + SQUARE))
    return image


def _red_pixels(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image).astype(int)
    return np.argwhere((pixels[..., 0] > 135) & (pixels[..., 1] < 60))


def test_a_copy_moves_and_resizes_the_subject_and_keeps_the_photo() -> None:
    photo = _subject_in_the_middle()
    rng = random.Random(0)
    centre = _red_pixels(photo).mean(0)
    moves = []
    for _ in range(20):
        copy = shifted_copy(photo, rng)
        assert copy.size == photo.size and copy.mode == "RGB"
        red = _red_pixels(copy)
        # The whole subject stays in view at its new size (bilinear edges blur by a pixel).
        low, high = ZOOM_RANGE
        assert (low * SQUARE - 2) ** 2 <= len(red) <= (high * SQUARE + 2) ** 2
        # Only colours of the photo (and blends at the subject's edge): no black border.
        assert np.asarray(copy).min() >= 20
        moves.append(np.abs(red.mean(0) - centre).max())
    assert max(moves) > 0.15 * SIDE, "copies should move the subject away from the middle"
    assert max(moves) <= MAX_SHIFT * SIDE + 1


def test_copies_are_labelled_after_the_originals_and_repeat_per_seed() -> None:
    photos = [("a.png", _subject_in_the_middle()), ("b.png", _subject_in_the_middle())]
    first = with_shifted_copies(photos, 2, random.Random(7))
    again = with_shifted_copies(photos, 2, random.Random(7))
    other = with_shifted_copies(photos, 2, random.Random(8))
    assert [label for label, _ in first] == [
        "a.png", "b.png", "a.png#shifted-1", "a.png#shifted-2", "b.png#shifted-1", "b.png#shifted-2",
    ]
    assert first[:2] == photos
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for (_, x), (_, y) in zip(first, again))
    assert not np.array_equal(np.asarray(first[2][1]), np.asarray(other[2][1]))


def test_no_copies_leaves_the_photos_and_the_random_stream_alone() -> None:
    photos = [("a.png", _subject_in_the_middle())]
    rng = random.Random(3)
    assert with_shifted_copies(photos, 0, rng) == photos
    assert rng.random() == random.Random(3).random()
