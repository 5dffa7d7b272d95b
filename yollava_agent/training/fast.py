"""The fast training step: the reference loss and gradients, without recomputing what cannot change.

What it does. Every training sample is split at its first concept token (`<bo>`): the *prefix*
before it (`<s> USER: <image>×576 \\n` for a photo, `<s> USER: ▁` for a text-only turn) and the
*suffix* from it on (concept prompt, question, answer). Then, per step:

- the vision tower and projector run once per photo and flip, the first time that view is needed,
  never again (their features are only kept while the prefix they feed is not);
- each distinct prefix (photo × flip, or the text-only one) runs through the language model once,
  with no grad; its keys and values are kept, by default on the model's device in its dtype, for
  the whole run (all epochs), and reused by every later step that uses that view;
- all of a step's samples run in one forward: each row's cached prefix K/V are laid side by side
  over the batch (a plain expand when every row shares one view; a text-only row's 3-token prefix
  sits right-aligned in the photo rows' prefix slots, the slots before it masked out), and only the
  suffixes run, right-padded, each row at positions counting on from its own prefix length;
- the final hidden states are gathered at the answer positions only, and the lm_head (through the
  concept-row hook, so the concept logits come from the trained output rows) runs on those alone.

Why it is exact. The concept prompt comes after the image, so nothing in a prefix depends on the
trained rows: its keys and values are constants, and attention from the suffix to them gives the
same result as the full sequence (causal attention; each row's explicit positions give the same
rotary phases as in its full sequence). Masked slots get exactly zero attention weight, and right
padding sits after every real token, so no real token sees either. The loss is the reference's:
one cross-entropy sum over every answer token of the batch divided by their count, so the loss and
the gradients on the input and output rows are those of the full-sequence step up to float
rounding. The batches themselves are the reference's (same shuffle, same flips, same members); only
how one batch is computed changes. `tests/unit_tests/test_fast_training.py` checks all of this.

Why batches are not re-composed "by photo", nor text-only turns split off. Once the prefix is
cached, a row costs its suffix tokens plus attention over its prefix whether or not its neighbours
share the photo (the cache update concatenates per row anyway), so grouping by photo would save
nothing measurable while changing the recipe's random batches. Text-only rows ride in the same
forward instead of one of their own: every extra forward re-reads all the weights (forward and
backward, ~10 ms for a 7B on an H100), while a few masked prefix slots cost next to nothing.

Memory. For LLaVA-1.5-7B one prefix is 32 layers × 2 × 581 tokens × 4096 × 2 bytes ≈ 0.29 GiB in
bf16, so the public example's 218 photos × 2 flips would need ~126 GiB. `TrainingConfig` therefore
lets the kept prefixes live elsewhere (`prefix_cache_device="cpu"`, pinned host memory), in a
smaller dtype (`prefix_cache_dtype="float8_e4m3fn"`, not exact), or up to a budget
(`prefix_cache_gib`): views that do not fit are rebuilt, from their kept vision features, each
time a step uses them (batched with the step's other misses).

Not done here: CUDA graphs and `torch.compile` (GPU-only, and the varying suffix lengths would
need padding buckets; `benchmarks/train_speed.py` measures compiled inference instead), a fused
cache layer that would write the suffix K/V into a preallocated buffer instead of concatenating,
and overlapping host-to-device prefix copies with compute.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from transformers import DynamicCache

if TYPE_CHECKING:
    from yollava_agent.runtime import LlavaRuntime
    from yollava_agent.training.trainer import _Encoded, _Encoder

logger = logging.getLogger(__name__)

PrefixKey = tuple[int, int | None, bool]
"""(distinct prefix token ids, photo index or None, flipped)."""

Layers = list[tuple[torch.Tensor, torch.Tensor]]
"""One prefix's keys and values: a (keys, values) pair per layer, each [kv heads, length, head dim]."""


class _Kept:
    """One kept prefix: per-layer tensors on the model's device in its dtype, or one packed tensor
    in another place or dtype (moved and cast back per use)."""

    __slots__ = ("layers", "packed")

    def __init__(self, layers: Layers | None = None, packed: torch.Tensor | None = None) -> None:
        self.layers = layers
        self.packed = packed

    def on(self, device: torch.device, dtype: torch.dtype) -> Layers:
        if self.layers is not None:
            return self.layers
        assert self.packed is not None
        moved = self.packed.to(device, non_blocking=True).to(dtype)
        return [(moved[i, 0], moved[i, 1]) for i in range(moved.shape[0])]


@dataclass(frozen=True)
class _Plan:
    prefix: int
    """Index of this sample's prefix token ids in `FastPath._prefix_ids`."""
    photo: int | None
    suffix: list[int]
    """Token ids from the first concept token to the end."""
    answer_from: int
    """Suffix index of the hidden state that predicts the first answer token."""
    targets: list[int]
    """The answer tokens (the reference's labels)."""
    judged: bool
    """Counts towards recognition accuracy (photo turns)."""


@dataclass
class FastStats:
    """What the fast path computed over a run."""

    vision_images: int = 0
    """Photo views (photo × flip) that went through the vision tower."""
    prefix_builds: int = 0
    """Prefix forwards (a view whose K/V were not kept is built again each time it is used)."""
    prefix_hits: int = 0
    """Rows whose prefix K/V came from the kept cache."""
    kept_prefixes: int = 0
    kept_bytes: int = 0
    steps: int = 0


def stack_views(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack photo views; views tiled into different numbers of tiles are zero-padded to the most
    (as the processors pad a batch: the model reads each photo's tile count off its size)."""
    most = max(view.shape[0] for view in views)
    if all(view.shape == views[0].shape for view in views):
        return torch.stack(list(views))
    padded = [torch.cat([v, v.new_zeros((most - v.shape[0], *v.shape[1:]))]) for v in views]
    return torch.stack(padded)


def image_features(
    model: torch.nn.Module, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Each view's projected image features, [image tokens, hidden]: what the language model
    receives. The model's config supplies the feature layer, selection and (OneVision) aspect
    ratio; LLaVA-NeXT and OneVision tile each photo by its shape, so views differ in token count."""
    kwargs = {} if image_sizes is None else {"image_sizes": image_sizes}
    output = model.model.get_image_features(pixel_values=pixel_values, **kwargs)
    features = getattr(output, "pooler_output", output)
    return [feature.reshape(-1, feature.shape[-1]) for feature in features]


def _first_concept_index(ids: Sequence[int], first_id: int, count: int) -> int | None:
    return next((i for i, t in enumerate(ids) if first_id <= t < first_id + count), None)


def unsupported_reason(
    runtime: LlavaRuntime, encoded: Sequence[_Encoded], first_id: int, count: int
) -> str | None:
    """Why the fast path cannot train these samples (None when it can).

    It needs every image token before the first concept token, so that image features only enter
    the cached prefix.
    """
    image_id = runtime.model.config.image_token_id
    for item in encoded:
        split = _split(item, first_id, count)
        if any(t == image_id for t in item.input_ids[split:]):
            return "an image token comes after the concept prompt"
        if item.photo is not None and image_id not in item.input_ids[:split]:
            return "a photo sample has no image token before the concept prompt"
    return None


def _split(item: _Encoded, first_id: int, count: int) -> int:
    first = _first_concept_index(item.input_ids, first_id, count)
    # The suffix must hold every position whose hidden state predicts an answer token.
    limit = item.answer_start - 1
    return limit if first is None else min(first, limit)


class FastPath:
    """The cached-prefix training step for one run: `step(chosen, flips) -> (loss, hits, row
    losses)`, as `trainer.StepFunction`.

    Built once per run (the prefix cache lives as long as the object); call it inside
    `_ConceptRows.spliced`, as the reference step.
    """

    def __init__(
        self,
        runtime: LlavaRuntime,
        encoder: _Encoder,
        encoded: Sequence[_Encoded],
        first_id: int,
        count: int,
        *,
        cache_device: str | torch.device | None = None,
        cache_dtype: torch.dtype | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.encoder = encoder
        self.model = runtime.model
        self.lm = runtime.model.model.language_model
        self.embed = runtime.model.get_input_embeddings()
        self.head = runtime.model.get_output_embeddings()
        self.device = runtime.device
        self.dtype = runtime.dtype
        self.cache_device = torch.device(cache_device) if cache_device is not None else self.device
        self.cache_dtype = cache_dtype or self.dtype
        self.cache_bytes = cache_bytes
        self.pad_id = runtime.tokenizer.pad_token_id or runtime.tokenizer.eos_token_id
        self.image_id = runtime.model.config.image_token_id
        self.stats = FastStats()
        self._cache_kwarg = (
            "cache"
            if "cache" in inspect.signature(self.lm.forward).parameters
            else "past_key_values"
        )
        self._pin = self.cache_device.type == "cpu" and self.device.type == "cuda"
        self._prefix_ids: list[list[int]] = []
        self._kept: dict[PrefixKey, _Kept] = {}
        self._slab: torch.Tensor | None = None
        self._slab_used = 0
        self._full = False
        self._features: dict[tuple[int, bool], torch.Tensor] = {}
        self._plans: dict[int, _Plan] = {}
        interned: dict[tuple[int, ...], int] = {}
        for item in encoded:
            split = _split(item, first_id, count)
            prefix = tuple(item.input_ids[:split])
            if prefix not in interned:
                interned[prefix] = len(self._prefix_ids)
                self._prefix_ids.append(list(prefix))
            self._plans[id(item)] = _Plan(
                prefix=interned[prefix],
                photo=item.photo,
                suffix=item.input_ids[split:],
                answer_from=item.answer_start - 1 - split,
                targets=item.input_ids[item.answer_start :],
                judged=item.kind != "text",
            )

    # -- one training step -------------------------------------------------------------------

    def __call__(
        self, chosen: Sequence[_Encoded], flips: Sequence[bool]
    ) -> tuple[torch.Tensor, list[bool | None], list[float]]:
        """Loss (mean cross-entropy over every answer token of the batch) and, per row, whether
        its first answer token was right (None: a text turn, not judged) and its answer tokens'
        summed cross-entropy."""
        plans = [self._plans[id(item)] for item in chosen]
        keys: list[PrefixKey] = [
            (p.prefix, p.photo, bool(flip) if p.photo is not None else False)
            for p, flip in zip(plans, flips, strict=True)
        ]
        prefixes = self._prefixes(set(keys))
        lengths = [len(self._prefix_ids[key[0]]) for key in keys]
        slots = max(lengths)
        batch, width = len(plans), max(len(p.suffix) for p in plans)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        for row, plan in enumerate(plans):
            ids[row, : len(plan.suffix)] = torch.tensor(plan.suffix)
        ids = ids.to(self.device)
        # Each row continues its own prefix: positions count on from its own length.
        positions = (torch.tensor(lengths).unsqueeze(1) + torch.arange(width)).to(self.device)
        kwargs: dict[str, object] = {}
        if slots:
            kwargs.update(
                {self._cache_kwarg: self._batch_cache(keys, slots, prefixes), "use_cache": True}
            )
            if min(lengths) < slots:
                # Shorter prefixes sit right-aligned in the prefix slots; the slots before them are masked.
                mask = torch.ones((batch, slots + width), dtype=torch.long)
                for row, length in enumerate(lengths):
                    mask[row, : slots - length] = 0
                kwargs["attention_mask"] = mask.to(self.device)
        hidden = self.lm(input_ids=ids, position_ids=positions, **kwargs).last_hidden_state
        rows, cols, firsts, targets = [], [], [], []
        for row, plan in enumerate(plans):
            firsts.append(len(rows))
            rows += [row] * len(plan.targets)
            cols += range(plan.answer_from, plan.answer_from + len(plan.targets))
            targets += plan.targets
        picked = hidden[
            torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)
        ]
        logits = self.head(picked).float()
        target = torch.tensor(targets, device=self.device)
        loss = F.cross_entropy(logits, target, reduction="sum") / len(targets)
        with torch.no_grad():
            first = torch.tensor(firsts, device=self.device)
            right = (logits[first].argmax(-1) == target[first]).tolist()
            per_token = F.cross_entropy(logits, target, reduction="none")
            answer_lengths = [len(plan.targets) for plan in plans]
            # One transfer for the batch, not one per row (each is a device sync on a GPU).
            parts = per_token.split(answer_lengths)
            row_losses = torch.stack([part.sum() for part in parts]).tolist()
        self.stats.steps += 1
        hits = [hit if plan.judged else None for hit, plan in zip(right, plans, strict=True)]
        return loss, hits, row_losses

    def _batch_cache(
        self, keys: list[PrefixKey], slots: int, prefixes: dict[PrefixKey, Layers]
    ) -> DynamicCache:
        """The rows' prefix K/V side by side: an expand when they share one view, else stacked."""
        unique = list(dict.fromkeys(keys))
        padded: dict[PrefixKey, Layers] = {}
        for key in unique:
            layers = prefixes[key]
            short = slots - layers[0][0].shape[-2]
            pad = (0, 0, short, 0)
            padded[key] = [(F.pad(k, pad), F.pad(v, pad)) for k, v in layers] if short else layers
        cache = DynamicCache()
        for layer in range(len(self.lm.layers)):
            if len(unique) == 1:
                k, v = (
                    t.unsqueeze(0).expand(len(keys), *t.shape) for t in padded[unique[0]][layer]
                )
            else:
                k = torch.stack([padded[key][layer][0] for key in keys])
                v = torch.stack([padded[key][layer][1] for key in keys])
            # `update` would concatenate onto an empty tensor (one more copy of every prefix):
            # start the layer with an empty slice, then hand it the batch tensors themselves.
            cache.update(k[:, :, :0], v[:, :, :0], layer)
            held = cache.layers[layer] if hasattr(cache, "layers") else None
            if held is not None and hasattr(held, "keys"):
                held.keys, held.values = k, v
            else:
                cache.update(k, v, layer)
        return cache

    # -- prefixes and vision features -------------------------------------------------------------

    def _prefixes(self, keys: set[PrefixKey]) -> dict[PrefixKey, Layers]:
        """Each key's prefix K/V on the model's device in its dtype: kept ones, the others built now."""
        ready: dict[PrefixKey, Layers] = {}
        missing = []
        for key in sorted(keys, key=lambda k: (k[0], k[1] is None, k[1] or 0, k[2])):
            kept = self._kept.get(key)
            if kept is None:
                missing.append(key)
            else:
                self.stats.prefix_hits += 1
                ready[key] = kept.on(self.device, self.dtype)
        by_length: dict[int, list[PrefixKey]] = defaultdict(list)
        for key in missing:
            by_length[len(self._prefix_ids[key[0]])].append(key)
        for length, group in by_length.items():
            if length:
                ready.update(self._build(group))
            else:
                text = self.model.config.text_config
                heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
                head_dim = (
                    getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
                )
                empty = torch.zeros((heads, 0, head_dim), device=self.device, dtype=self.dtype)
                ready.update(dict.fromkeys(group, [(empty, empty)] * len(self.lm.layers)))
        return ready

    @torch.no_grad()
    def _build(self, keys: list[PrefixKey]) -> dict[PrefixKey, Layers]:
        """Run these prefixes (one batch, vision features spliced in) and keep what the budget allows."""
        ids = torch.tensor([self._prefix_ids[key[0]] for key in keys], device=self.device)
        embeds = self.embed(ids)
        views = [(key[1], key[2]) for key in keys if key[1] is not None]
        if views:
            features = torch.cat(self._vision(views))
            mask = (ids == self.image_id).unsqueeze(-1)
            if int(mask.sum()) * embeds.shape[-1] != features.numel():
                msg = (
                    f"Image tokens and image features do not match: {int(mask.sum())} tokens, "
                    f"{features.shape[0]} features."
                )
                raise ValueError(msg)
            embeds = embeds.masked_scatter(mask, features)
        cache = DynamicCache()
        positions = torch.arange(ids.shape[1], device=self.device).unsqueeze(0)
        self.lm(
            inputs_embeds=embeds,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kwarg: cache},
        )
        self.stats.prefix_builds += len(keys)
        batched = [(layer.keys, layer.values) for layer in cache.layers]
        built = {key: [(k[row], v[row]) for k, v in batched] for row, key in enumerate(keys)}
        self._keep(built)
        return built

    def _keep(self, built: dict[PrefixKey, Layers]) -> None:
        """Keep as many of these prefixes as the budget allows, in the storage device and dtype."""
        first = next(iter(built.values()))
        size = sum(k.numel() + v.numel() for k, v in first) * self.cache_dtype.itemsize
        room = (
            len(built)
            if self.cache_bytes is None
            else (self.cache_bytes - self.stats.kept_bytes) // size
        )
        fitting = list(built)[: max(0, room)]
        if len(fitting) < len(built) and not self._full:
            self._full = True
            logger.info(
                "Prefix cache full at %d views (%.2f GiB): other photo views are rebuilt per use.",
                self.stats.kept_prefixes + len(fitting),
                (self.stats.kept_bytes + len(fitting) * size) / 2**30,
            )
        native = (
            self.cache_device == self.device and self.cache_dtype == self.dtype and not self._pin
        )
        for key in fitting:
            layers = built[key]
            if native and len(fitting) == len(built):
                # Views into this build's batch tensors, all of which are kept: no copy at all.
                self._kept[key] = _Kept(layers=layers)
            elif native:
                self._kept[key] = _Kept(layers=[(k.clone(), v.clone()) for k, v in layers])
            else:
                self._kept[key] = _Kept(packed=self._pack(layers))
            self.stats.kept_prefixes += 1
            self.stats.kept_bytes += size
            if key[1] is not None:
                self._features.pop((key[1], key[2]), None)

    def _pack(self, layers: Layers) -> torch.Tensor:
        """One contiguous [layers, 2, kv heads, length, head dim] tensor in the storage dtype and place."""
        packed = torch.stack([torch.stack(pair) for pair in layers])
        if self.cache_dtype.is_floating_point and self.cache_dtype.itemsize == 1:
            limit = torch.finfo(
                self.cache_dtype
            ).max  # float8 casts overflow to NaN, not to the max
            packed = packed.clamp(-limit, limit)
        packed = packed.to(self.cache_dtype)
        if not self._pin:
            return packed.to(self.cache_device)
        nbytes = packed.numel() * packed.element_size()
        if self._slab is None or self._slab_used + nbytes > self._slab.numel():
            # Pinned host memory in power-of-two slabs (the pinned allocator rounds every
            # allocation up to one), each holding several prefixes.
            self._slab = torch.empty(
                1 << max(30, (nbytes - 1).bit_length()), dtype=torch.uint8, pin_memory=True
            )
            self._slab_used = 0
        stored = (
            self._slab[self._slab_used : self._slab_used + nbytes]
            .view(self.cache_dtype)
            .view(packed.shape)
        )
        self._slab_used += nbytes
        stored.copy_(packed)
        return stored

    def _vision(self, views: list[tuple[int, bool]]) -> list[torch.Tensor]:
        """Projected image features of each view (`image_features`), computed only once."""
        new = [view for view in dict.fromkeys(views) if view not in self._features]
        if new:
            pixels = stack_views([self.encoder.photos[photo][int(flip)] for photo, flip in new])
            sizes = None
            if self.encoder.image_sizes:
                chosen = [self.encoder.image_sizes[photo][int(flip)] for photo, flip in new]
                sizes = torch.stack(chosen).to(self.device)
            features = image_features(self.model, pixels.to(self.device, self.dtype), sizes)
            for view, feature in zip(new, features, strict=True):
                self._features[view] = feature.to(self.device, self.dtype)
            self.stats.vision_images += len(new)
        return [self._features[view] for view in views]
