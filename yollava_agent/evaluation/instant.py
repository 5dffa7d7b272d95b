"""The `instant` method: the product's instant tier, CLIP similarity with a calibrated threshold.

Every train and test photo is embedded once with CLIP. For concept c, a photo is taken to show c
when its best cosine similarity to c's train photos is at least c's threshold, which
`calibrate_threshold` (the rule `ConceptStore` uses) places between c's own train photos and the
other concepts' train photos. No language model is involved, so the method spends no prompt
tokens and answers no QA (its QA numbers are null): in the product an untrained concept answers
questions through its description, which the `description` method measures.

Not done: the extra negative pool in calibration (the store calibrates on its pool too; here the
negatives are the other subjects, as the evaluation's negatives are), and any learned classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import torch
from PIL import Image

from yollava_agent.evaluation.dataset import EvalDataset
from yollava_agent.evaluation.metrics import ConceptResult, recognition_accuracy
from yollava_agent.recognition import best_similarity, calibrate_threshold
from yollava_agent.training.negatives import ClipEmbedder

INSTANT = "instant"


class InstantRecogniser:
    """CLIP embeddings of a dataset's photos, and the instant tier's verdicts on them."""

    def __init__(
        self,
        dataset: EvalDataset,
        embedder: ClipEmbedder,
        train_photos: Callable[[str], Sequence[Image.Image]],
        test_photos: Mapping[str, Sequence[Image.Image]],
    ) -> None:
        self.dataset = dataset
        self.train = {c.name: embedder.embed(list(train_photos(c.name))) for c in dataset.concepts}
        self.test = {name: embedder.embed(list(photos)) for name, photos in test_photos.items()}

    def threshold(self, name: str) -> float:
        """Concept `name`'s threshold, calibrated on the other concepts' train photos."""
        others = [self.train[c.name] for c in self.dataset.others(name)]
        return calibrate_threshold(self.train[name], torch.cat(others))

    def evaluate(self, name: str) -> ConceptResult:
        """Recognition of `name` on its own test photos and on every other concept's."""
        started = time.monotonic()
        threshold = self.threshold(name)
        photos = self.train[name]
        own = best_similarity(photos, self.test[name])
        others = torch.cat([self.test[c.name] for c in self.dataset.others(name)])
        other_scores = best_similarity(photos, others)
        positive, negative, _ = recognition_accuracy(
            [bool(s >= threshold) for s in own], [bool(s >= threshold) for s in other_scores]
        )
        return ConceptResult(
            method=INSTANT,
            concept=name,
            positive=positive,
            negative=negative,
            prompt_tokens=0,
            counts={"positives": len(own), "negatives": len(other_scores)},
            seconds=time.monotonic() - started,
            details={"threshold": round(threshold, 6)},
        )
