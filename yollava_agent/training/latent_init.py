"""Where a concept's latent rows start: from its own photos' projected image tokens.

`TrainingConfig.latent_init = "image"` starts the k latent input rows at k cluster centres of the
concept's training photos' projected image tokens (every token of every photo, as the base
receives them after the projector), found by k-means with a seeded k-means++ start, as MC-LLaVA
initialises its concept tokens from visual tokens. The rows then start where images live, at the
length and in the directions of image tokens, instead of at the mean word row ("mean", the
default: the paper's and the public code's start), and the training moves them from there. The
identifier row and every output row start as "mean" does.

Chosen not to: cluster only the subject's tokens (the product has no masks), weight tokens by
how often they recur across photos, or use the mirrored views (their tokens are the same looks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from yollava_agent.runtime import LlavaRuntime
from yollava_agent.training.fast import image_features

KMEANS_ITERATIONS = 25


def kmeans(points: torch.Tensor, k: int, seed: int, iterations: int = KMEANS_ITERATIONS) -> torch.Tensor:
    """(k, dim) cluster centres of `points` (n, dim): Lloyd's iterations from a k-means++ start
    drawn with `seed`. With fewer than k distinct points, centres repeat points."""
    if k < 1 or len(points) == 0:
        msg = f"k-means needs k >= 1 and at least one point, got k={k} and {len(points)} points."
        raise ValueError(msg)
    points = points.float()
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(len(points), (1,), generator=generator))
    centres = [points[first]]
    for _ in range(1, k):
        distance = torch.cdist(points, torch.stack(centres)).min(dim=1).values.pow(2)
        if float(distance.sum()) == 0.0:
            pick = int(torch.randint(len(points), (1,), generator=generator))
        else:
            pick = int(torch.multinomial(distance / distance.sum(), 1, generator=generator))
        centres.append(points[pick])
    centre = torch.stack(centres)
    for _ in range(iterations):
        assignment = torch.cdist(points, centre).argmin(dim=1)
        moved = centre.clone()
        for index in range(k):
            members = points[assignment == index]
            if len(members):
                moved[index] = members.mean(0)
        if torch.equal(moved, centre):
            break
        centre = moved
    return centre


@torch.inference_mode()
def image_token_rows(
    runtime: LlavaRuntime, photos: Sequence[Image.Image], k: int, seed: int
) -> torch.Tensor:
    """(k, hidden) latent rows: k-means centres of the photos' projected image tokens."""
    views = runtime.processor.image_processor(images=list(photos), return_tensors="pt")
    sizes = views["image_sizes"].to(runtime.device) if "image_sizes" in views else None
    pixel_values = views["pixel_values"].to(runtime.device, runtime.dtype)
    tokens = torch.cat(image_features(runtime.model, pixel_values, sizes)).float().cpu()
    return kmeans(tokens, k, seed)
