"""`TrainingConfig`: the Yo'LLaVA recipe's knobs, checked when made.

Defaults follow the paper and its public code: AdamW at lr 1e-3 with weight decay 0.01 (on the
concept's rows only), 15 epochs, the best epoch by training recognition accuracy after a warm-up of
4, k=16 latent tokens, about 100 hard and 100 easy negatives, random horizontal flips.

`fast` (default) trains with the cached-prefix step of `training/fast.py`: the same batches, loss
and gradients as the full-sequence reference step (`fast=False`) up to float rounding, with the
vision tower and each photo's image prefix run once per run instead of once per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from yollava_agent.training.data import RECOGNITION_QUESTIONS

MIN_TEACH_PHOTOS = 3
"""Fewest photos a concept is taught from (the paper: 1 photo gives ~0.68, 5 give over 0.90)."""
MAX_TEACH_PHOTOS = 10
"""Most photos a concept is taught from; more cost training time and add little."""


def check_teach_photo_count(name: str, count: int) -> None:
    """Refuse a photo count outside 3-10, saying how many were given and why the rule exists."""
    if MIN_TEACH_PHOTOS <= count <= MAX_TEACH_PHOTOS:
        return
    if count < MIN_TEACH_PHOTOS:
        msg = (
            f"Teaching {name!r} needs {MIN_TEACH_PHOTOS} to {MAX_TEACH_PHOTOS} photos of it, and "
            f"{count} {'was' if count == 1 else 'were'} given: with fewer, recognition is much "
            "weaker (about 0.68 from one photo in the paper, over 0.90 from five). Add photos "
            "taken on other days or from other sides."
        )
    else:
        msg = (
            f"Teaching {name!r} takes at most {MAX_TEACH_PHOTOS} photos, and {count} were given: "
            f"choose the {MAX_TEACH_PHOTOS} that show it most differently."
        )
    raise ValueError(msg)


@dataclass
class TrainingConfig:
    """How one concept is trained."""

    epochs: int = 15
    learning_rate: float = 1e-3
    output_learning_rate: float | None = None
    """The output rows' rate (None: `learning_rate`). Lower, a loaded concept's output rows do not
    outgrow the vocabulary's and win words it was not asked about (a base with long rows trains
    its input rows fast)."""
    weight_decay: float = 0.01
    batch_size: int = 1
    warmup_epochs: int = 4
    """The kept epoch is the one with the best recognition accuracy after this many epochs."""
    num_latent_tokens: int = 16
    """k (0 is the paper's ablation: the identifier token alone, no concept prompt)."""
    latent_init: Literal["mean", "image"] = "mean"
    """Where the latent input rows start: the mean word row plus small noise (the paper's and the
    public code's start), or k-means centres of the training photos' projected image tokens
    (`training/latent_init.py`, as MC-LLaVA does)."""
    latent_interpolation: float = 1.0
    """Where the kept latent input rows lie between their start (0) and their trained value (1,
    the paper's recipe): start + this x (trained - start), once training ends, as a weight-space
    ensemble of a fine-tuned and a pretrained model does (WiSE-FT). Only when the moved rows
    still fit the training turns as `restarts` judges them ("yes" to at least half of the
    positive turns, `restart_below_accuracy` right); else they stay as trained (the report's
    `latent_interpolation` says which). The identifier row and the output rows are kept as
    trained (on a tied base, whose output rows are its input rows, the latent rows move in both)."""
    turns_per_positive: int = 16
    """Recognition phrasings asked per positive photo (4 photos give ~64 turns, as the paper)."""
    num_hard_negatives: int = 100
    num_easy_negatives: int = 100
    near_duplicate_threshold: float = 0.95
    """Pool photos this similar (CLIP cosine) to a positive may be the subject: never negatives."""
    subject_kind: Literal["object", "person"] = "object"
    """Which attribute questions to ask: objects and animals, or people."""
    attribute_answer_tokens: int = 48
    """Longest base-model answer to an attribute question."""
    flip_probability: float = 0.5
    seed: int = 0
    restarts: int = 0
    """How many more times to train when a run did not fit its training turns: its kept epoch
    said "yes" to under half of its positive turns (it collapsed into "always no"), or answered
    under `restart_below_accuracy` of its recognition turns right (a start can fall either way:
    README). Each restart draws from the next seed (`seed + 1`, ...); the first run that fits is
    kept, else the one whose kept epoch scored best. Only training turns decide."""
    restart_below_accuracy: float = 0.0
    """With `restarts`: a run whose kept epoch's training recognition accuracy is below this
    trains again too (0: only a run collapsed into "always no" does)."""
    fast: bool = True
    """Cached-prefix training (`training/fast.py`): vision features and each photo view's image-prefix
    keys/values are computed once per run and reused every step, and logits are computed at answer
    tokens only. Same loss and gradients as `False`, the full-sequence reference path (vision tower
    and whole sequence every step, as the public code), up to float rounding."""
    prefix_cache_device: str | None = None
    """Fast path: where kept prefix keys/values live. None: the model's device; "cpu": host memory
    (pinned when the model is on a GPU)."""
    prefix_cache_dtype: str | None = None
    """Fast path: their dtype, a torch dtype name. None: the model's (exact); a smaller one such as
    "float8_e4m3fn" halves bf16 memory but is no longer exact."""
    prefix_cache_gib: float | None = None
    """Fast path: the most memory kept prefixes may take (None: no limit). Photo views beyond it are
    rebuilt, from their kept vision features, each time a step uses them (about 0.29 GiB per view
    for LLaVA-1.5-7B in bf16)."""

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "turns_per_positive": self.turns_per_positive,
            "attribute_answer_tokens": self.attribute_answer_tokens,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                msg = f"TrainingConfig.{name} must be a positive integer, got {value!r}."
                raise ValueError(msg)
        for name in (
            "warmup_epochs",
            "num_latent_tokens",
            "num_hard_negatives",
            "num_easy_negatives",
            "restarts",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                msg = f"TrainingConfig.{name} must be an integer >= 0, got {value!r}."
                raise ValueError(msg)
        if self.turns_per_positive > len(RECOGNITION_QUESTIONS):
            msg = (
                f"TrainingConfig.turns_per_positive must be at most {len(RECOGNITION_QUESTIONS)} "
                f"(the number of phrasings), got {self.turns_per_positive}."
            )
            raise ValueError(msg)
        if not self.learning_rate > 0:
            msg = f"TrainingConfig.learning_rate must be > 0, got {self.learning_rate!r}."
            raise ValueError(msg)
        if self.output_learning_rate is not None and not self.output_learning_rate > 0:
            msg = (
                "TrainingConfig.output_learning_rate must be > 0 or None, "
                f"got {self.output_learning_rate!r}."
            )
            raise ValueError(msg)
        if self.weight_decay < 0:
            msg = f"TrainingConfig.weight_decay must be >= 0, got {self.weight_decay!r}."
            raise ValueError(msg)
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            msg = (
                "TrainingConfig.near_duplicate_threshold must be in (0, 1], got "
                f"{self.near_duplicate_threshold!r}."
            )
            raise ValueError(msg)
        if not 0.0 <= self.restart_below_accuracy <= 1.0:
            msg = (
                "TrainingConfig.restart_below_accuracy must be in [0, 1] (a share of training "
                f"turns), got {self.restart_below_accuracy!r}."
            )
            raise ValueError(msg)
        if not 0.0 <= self.latent_interpolation <= 1.0:
            msg = (
                "TrainingConfig.latent_interpolation must be in [0, 1] (0: the latent rows' "
                f"start, 1: as trained), got {self.latent_interpolation!r}."
            )
            raise ValueError(msg)
        if not 0.0 <= self.flip_probability <= 1.0:
            msg = f"TrainingConfig.flip_probability must be in [0, 1], got {self.flip_probability!r}."
            raise ValueError(msg)
        if self.prefix_cache_dtype is not None and not isinstance(
            getattr(torch, str(self.prefix_cache_dtype), None), torch.dtype
        ):
            msg = (
                "TrainingConfig.prefix_cache_dtype must name a torch dtype such as 'bfloat16', got "
                f"{self.prefix_cache_dtype!r}."
            )
            raise ValueError(msg)
        if self.prefix_cache_gib is not None and not self.prefix_cache_gib >= 0:
            msg = f"TrainingConfig.prefix_cache_gib must be >= 0 or None, got {self.prefix_cache_gib!r}."
            raise ValueError(msg)
        if self.latent_init not in ("mean", "image"):
            msg = f"TrainingConfig.latent_init must be 'mean' or 'image', got {self.latent_init!r}."
            raise ValueError(msg)
        if self.subject_kind not in ("object", "person"):
            msg = f"TrainingConfig.subject_kind must be 'object' or 'person', got {self.subject_kind!r}."
            raise ValueError(msg)
