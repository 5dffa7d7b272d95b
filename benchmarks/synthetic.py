"""Synthetic photos for the benchmarks: noisy scenes with a coloured square, distinct and cheap.

Imported by the benchmark scripts from their own folder (`python benchmarks/NAME.py`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def synthetic_photos(count: int, seed: int, size: int = 96) -> list[Image.Image]:
    """`count` photos of `size` pixels square, the same for the same seed."""
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        x, y = rng.integers(0, size // 2, 2)
        pixels[y : y + size // 2, x : x + size // 2] = rng.integers(0, 255, 3)
        photos.append(Image.fromarray(pixels))
    return photos
