"""Shifted copies of a concept's photos: the same subject at other places and sizes.

A vision tower that is not shift- and scale-invariant learns where and how big the subject was in
the few training photos along with what it looks like: trained on photos with the subject in the
middle, such a concept says "no" to a photo with it in a corner. `TrainingConfig.shifted_copies`
adds, per positive photo, copies zoomed by 0.85-1.2x about the centre and shifted by up to 30% of
a side in each direction, wrapped around (what leaves one edge comes back at the other, so no
border is invented and the whole photo stays in view). Each copy is a positive photo of its own,
asked about like the originals. Measured on the toyworld base (README): it is what lets its
concepts recognise their subjects at the test photos' corners and scales.

Not done: colour or lighting changes (the subject's colour is what it is), rotations (a shape's
orientation is part of its look), and copies of negative photos (they are many already).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from PIL import Image

ZOOM_RANGE = (0.85, 1.2)
"""Scale factors a copy is drawn from (below 1 the photo shrinks and repeats at its edges)."""
MAX_SHIFT = 0.3
"""Largest shift, as a share of the photo's side, in each direction."""


def shifted_copy(image: Image.Image, rng: random.Random) -> Image.Image:
    """`image` zoomed about its centre and shifted, wrapped around, at the same size."""
    width, height = image.size
    zoom = rng.uniform(*ZOOM_RANGE)
    zoomed = np.asarray(
        image.convert("RGB").resize(
            (max(1, round(width * zoom)), max(1, round(height * zoom))), Image.Resampling.BILINEAR
        )
    )
    rows = np.arange(height) - height // 2 + zoomed.shape[0] // 2
    cols = np.arange(width) - width // 2 + zoomed.shape[1] // 2
    rows = (rows - round(rng.uniform(-MAX_SHIFT, MAX_SHIFT) * height)) % zoomed.shape[0]
    cols = (cols - round(rng.uniform(-MAX_SHIFT, MAX_SHIFT) * width)) % zoomed.shape[1]
    return Image.fromarray(zoomed[np.ix_(rows, cols)])


def with_shifted_copies(
    photos: Sequence[tuple[str, Image.Image]], copies: int, rng: random.Random
) -> list[tuple[str, Image.Image]]:
    """`photos`, then `copies` shifted copies of each, labelled `photo#shifted-1`, ..."""
    extra = [
        (f"{label}#shifted-{index}", shifted_copy(image, rng))
        for label, image in photos
        for index in range(1, copies + 1)
    ]
    return [*photos, *extra]
