"""Evaluation: the Yo'LLaVA protocol on a dataset of personal subjects (`yollava eval DATASET`).

`load_dataset` reads `DATASET/<concept>/train|test/*` (and optional descriptions and two-choice
questions, `dataset.py`); `evaluate` runs the methods side by side (`vanilla`, `description`,
`instant`, `trained`, `trained-no-hard-negatives`) and `write_report` writes JSON, markdown and
a bar chart. Metrics are the paper's: recognition accuracy on positives and negatives, weighted
= (positive + negative) / 2, visual and text QA accuracy, and prompt tokens per concept.

Not here: datasets themselves. `yollava_agent.toyworld` is a synthetic benchmark with a small base
that knows its world; with the offline `tiny` model the numbers only prove that the harness runs.
"""

from yollava_agent.evaluation.dataset import (
    DatasetError,
    EvalConcept,
    EvalDataset,
    QAItem,
    load_dataset,
)
from yollava_agent.evaluation.harness import METHODS, EvalConfig, EvalReport, evaluate
from yollava_agent.evaluation.metrics import (
    METRICS,
    ConceptResult,
    qa_accuracy,
    recognition_accuracy,
    summarise,
    weighted_accuracy,
)
from yollava_agent.evaluation.report import chart, markdown, write_report

__all__ = [
    "METHODS",
    "METRICS",
    "ConceptResult",
    "DatasetError",
    "EvalConcept",
    "EvalConfig",
    "EvalDataset",
    "EvalReport",
    "QAItem",
    "chart",
    "evaluate",
    "load_dataset",
    "markdown",
    "qa_accuracy",
    "recognition_accuracy",
    "summarise",
    "weighted_accuracy",
    "write_report",
]
