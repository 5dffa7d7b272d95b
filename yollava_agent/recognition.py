"""The instant tier's recognition rule: CLIP similarity above a threshold calibrated on negatives.

A concept's photos are embedded with CLIP (unit vectors). A new photo shows the concept when its
best cosine similarity to any of those photos is at least the concept's threshold, and
`calibrate_threshold` places that threshold between the concept's own photos and photos known not
to show it. It lives in the core so that both long-term memory (`ConceptStore`) and the evaluation
harness use the one rule; the core imports no memory.

Not here: embedding photos (`training/negatives.py`, `ClipEmbedder`) and storing vectors (memory).
"""

from __future__ import annotations

import torch

DEFAULT_THRESHOLD = 0.8
"""Recognition threshold when there is nothing to calibrate on (no negatives, one photo)."""


def calibrate_threshold(photos: torch.Tensor, negatives: torch.Tensor) -> float:
    """A threshold between the concept's own photos and its negatives.

    Positives score by leave-one-out similarity (each photo against the others), negatives by
    their best similarity to any photo. Halfway between the lowest positive and the highest
    negative when they separate; else just above the highest negative (a false "that's bo" is
    worse than a miss, which training fixes later). With nothing to compare, `DEFAULT_THRESHOLD`.
    """
    highest_negative = float((negatives @ photos.T).max()) if len(negatives) else None
    lowest_positive = None
    if len(photos) > 1:
        similarity = photos @ photos.T
        similarity.fill_diagonal_(-1.0)
        lowest_positive = float(similarity.max(dim=1).values.min())
    if highest_negative is None:
        return DEFAULT_THRESHOLD if lowest_positive is None else min(DEFAULT_THRESHOLD, lowest_positive)
    if lowest_positive is not None and lowest_positive > highest_negative:
        return (lowest_positive + highest_negative) / 2
    return highest_negative + (1.0 - highest_negative) / 4


def best_similarity(photos: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Each query's best cosine similarity to any of the concept's photos (unit rows), (Q,)."""
    if len(photos) == 0:
        return torch.full((len(queries),), -1.0)
    return (queries @ photos.T).max(dim=1).values
