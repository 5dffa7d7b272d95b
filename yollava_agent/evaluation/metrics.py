"""The Yo'LLaVA evaluation metrics, from predictions to per-concept and mean numbers.

Recognition (paper, Table 2): for concept c, `positive` is the share of c's test photos the method
says show c, `negative` the share of every other concept's test photos it says do *not* show c,
and `weighted = (positive + negative) / 2`, so that always answering "yes" (or "no") scores 0.5
however many negatives there are. Two-choice QA: the share of questions whose right option was
picked, visual (with a photo) and text-only separately. `prompt_tokens`: how many prompt tokens
the method spends to tell the model about the concept (Yo'LLaVA: the concept prompt's 16 latent
tokens and the identifier; a description: its sentence; vanilla and CLIP: none).

Means are over concepts (each concept weighs the same, as in the paper), skipping concepts where
a metric is undefined (no QA questions, or a method that does not answer QA). Not done: confidence
intervals, and averaging over photos instead of concepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

METRICS = ("positive", "negative", "weighted", "visual_qa", "text_qa", "prompt_tokens")
"""Every number reported per concept and method, in report order."""

ACCURACY_METRICS = METRICS[:-1]


def accuracy(correct: Sequence[bool]) -> float | None:
    """The share of True values; None when there is nothing to score."""
    return sum(bool(c) for c in correct) / len(correct) if len(correct) else None


def recognition_accuracy(
    said_yes_on_positives: Sequence[bool], said_yes_on_negatives: Sequence[bool]
) -> tuple[float | None, float | None, float | None]:
    """(positive, negative, weighted) from the method's yes/no on positive and negative photos."""
    positive = accuracy(said_yes_on_positives)
    negative = accuracy([not yes for yes in said_yes_on_negatives])
    return positive, negative, weighted_accuracy(positive, negative)


def weighted_accuracy(positive: float | None, negative: float | None) -> float | None:
    """The paper's weighted recognition accuracy: (positive + negative) / 2."""
    if positive is None or negative is None:
        return None
    return (positive + negative) / 2


def qa_accuracy(chosen: Sequence[int], answers: Sequence[int]) -> float | None:
    """The share of two-choice questions whose chosen option index is the right one."""
    if len(chosen) != len(answers):
        msg = f"Got {len(chosen)} chosen options for {len(answers)} questions."
        raise ValueError(msg)
    return accuracy([c == a for c, a in zip(chosen, answers, strict=True)])


@dataclass
class ConceptResult:
    """One method's numbers on one concept."""

    method: str
    concept: str
    positive: float | None
    negative: float | None
    visual_qa: float | None = None
    text_qa: float | None = None
    prompt_tokens: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """How many positive photos, negative photos, visual and text questions were scored."""
    seconds: float = 0.0
    """Wall time for this concept and method, training included."""
    details: dict[str, Any] = field(default_factory=dict)
    """Method-specific facts: the threshold, the description used, the negatives trained on; for
    the methods the model answers, the photos it got wrong (`said_no_to`: the concept's own test
    photos by file name; `said_yes_to`: other concepts' as "concept/file")."""

    @property
    def weighted(self) -> float | None:
        return weighted_accuracy(self.positive, self.negative)

    def metric(self, name: str) -> float | None:
        """One of `METRICS` by name."""
        if name not in METRICS:
            msg = f"Unknown metric {name!r}; the metrics are {', '.join(METRICS)}."
            raise ValueError(msg)
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        numbers = {name: self.metric(name) for name in METRICS}
        return {
            **numbers,
            "counts": dict(self.counts),
            "seconds": round(self.seconds, 3),
            "details": self.details,
        }


def mean_of(values: Sequence[float | None]) -> float | None:
    """The mean of the defined values; None when none is defined."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def summarise(results: Sequence[ConceptResult]) -> dict[str, float | None]:
    """Each metric's mean over concepts (undefined values skipped), plus the total seconds."""
    summary: dict[str, float | None] = {
        name: mean_of([r.metric(name) for r in results]) for name in METRICS
    }
    summary["seconds"] = round(sum(r.seconds for r in results), 3)
    return summary
