"""Symbolic photos: a scene as the 16 soft words a language model reads at its image tokens.

A photo becomes a 4x4 grid of slots, one per 16-px patch of the 64-px photo (so one slot per
image token of the toyworld LLaVA). A patch covered by an object (the one covering most of it,
at least `MIN_COVER`; every object owns at least its best-covered patch, so small objects never
vanish) is that object's *components*: its colour, pattern, shape and size words, plus three
never-spoken tokens for what the language never names (`<shade_0|1>`, `<style_0|1>`,
`<rim_0|1>`), and, for a base whose tokenizer has them, an eighth never-spoken token for the
object's place (`<place_0>`..`<place_8>`, the 3x3 grid cell its centre lies in; where an
object is cannot be read from a slot's index among the 16 alone, and "where is bo?" is a
question people ask). A base without the place tokens gets -1 there, which `slot_vectors`
skips, so its slots are exactly the seven-component ones it was trained on. A background
patch is the background's word alone. A slot's vector is the
normalised sum of its components' rows of the language model's own input-embedding table,
scaled to the mean norm of a row: a soft word, at a word's scale, that the language model reads
as it reads text. This is what a projector regresses onto later (the next stage: photos).

Chosen not to: give slots a position vector of their patch (the place token names the object's
cell, the same for all its patches; patch order is what token positions carry), blend the
background into object slots, or model partial cover (a patch is one owner's or the background's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    PATTERNS,
    PLACES,
    SHAPES,
    SIZES,
    Scene,
    _shape_mask,
)

GRID = 4
"""Slots per side: 64-px photos in 16-px patches, as the toyworld LLaVA's vision tower."""
SLOTS = GRID * GRID
MIN_COVER = 0.15
"""A patch belongs to the object covering at least this share of it (the most-covering one)."""
UNNAMED_TOKENS = ("<shade_0>", "<shade_1>", "<style_0>", "<style_1>", "<rim_0>", "<rim_1>")
"""Never-spoken tokens: in slots only, never in any text the model reads or writes."""
PLACE_TOKENS = tuple(f"<place_{i}>" for i in range(len(PLACES)))
"""Never-spoken tokens for an object's place, in `PLACES` order (bases that have them)."""
COMPONENTS = 8
"""Components of an object slot: colour, pattern, shape, size, shade, style, rim, place."""
SLOT_WORDS = (*COLOURS, *PATTERNS, *SHAPES, *SIZES, *BACKGROUNDS)
"""The words slots are made of: each must be one token of the world's tokenizer."""


def slot_owners(scene: Scene) -> np.ndarray:
    """(16,) ints: which object of `scene` each patch (row by row) shows, or -1 for background."""
    side = IMAGE_SIZE // GRID
    coords = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    xs, ys = np.meshgrid(coords, coords)
    covers = np.zeros((len(scene.objects), SLOTS))
    for index, obj in enumerate(scene.objects):
        mask = _shape_mask(obj.look.shape, xs - obj.x, ys - obj.y, obj.radius)
        covers[index] = mask.reshape(GRID, side, GRID, side).mean(axis=(1, 3)).reshape(-1)
    owners = np.where(covers.max(0) >= MIN_COVER, covers.argmax(0), -1)
    for index in range(len(scene.objects)):
        if not (owners == index).any():
            owners[int(covers[index].argmax())] = index
    return owners


def word_ids(tokenizer: object) -> dict[str, int]:
    """Token id of every slot word (' blue') and never-spoken token; a word that is not one
    token is a tokenizer the slots cannot use."""
    ids = {}
    for word in SLOT_WORDS:
        pieces = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            msg = f"Slot word {word!r} is {len(pieces)} tokens in this tokenizer; slots need one."
            raise ValueError(msg)
        ids[word] = pieces[0]
    for token in UNNAMED_TOKENS:
        ids[token] = tokenizer.convert_tokens_to_ids(token)
    vocabulary = tokenizer.get_vocab()
    for token in PLACE_TOKENS:
        if token in vocabulary:
            ids[token] = vocabulary[token]
    return ids


def slot_components(scene: Scene, ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(16, 8) component token ids of each slot (padded with -1; the place is -1 when `ids` has
    no place tokens) and (16,) slot owners."""
    owners = slot_owners(scene)
    rows = np.full((SLOTS, COMPONENTS), -1, dtype=np.int64)
    for slot, owner in enumerate(owners):
        if owner < 0:
            rows[slot, 0] = ids[scene.background]
            continue
        obj = scene.objects[owner]
        look = obj.look
        rows[slot] = [
            ids[look.colour],
            ids[look.pattern],
            ids[look.shape],
            ids[obj.size],
            ids[f"<shade_{look.shade}>"],
            ids[f"<style_{look.style}>"],
            ids[f"<rim_{look.rim}>"],
            ids.get(PLACE_TOKENS[PLACES.index(obj.place)], -1),
        ]
    return rows, owners


def slot_scale(embeddings: torch.Tensor) -> float:
    """The mean norm of an embedding row: the length every slot vector gets."""
    return float(embeddings.detach().norm(dim=-1).mean())


def slot_vectors(
    components: torch.Tensor, embeddings: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """(..., 8) component ids -> (..., hidden) slot vectors: the normalised sum of the
    components' embedding rows (differentiable in `embeddings`), at length `scale` (default:
    `slot_scale(embeddings)`; a frozen base keeps the one it was trained with, so that rows
    added later, such as a concept's, do not move it)."""
    present = (components >= 0).unsqueeze(-1).to(embeddings.dtype)
    summed = (embeddings[components.clamp(min=0)] * present).sum(-2)
    length = slot_scale(embeddings) if scale is None else scale
    return summed / summed.norm(dim=-1, keepdim=True).clamp(min=1e-6) * length


def scene_slots(
    scenes: Sequence[Scene], ids: dict[str, int], embeddings: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """(len(scenes), 16, hidden) slot vectors of whole photos (what a projector is to match)."""
    components = np.stack([slot_components(scene, ids)[0] for scene in scenes])
    return slot_vectors(torch.from_numpy(components), embeddings, scale)
