"""The committed symbolic base: it loads, and answers held-out turns exactly as its report says.

`yollava_agent/toyworld/weights/symbolic/` is the Llama that `python -m
yollava_agent.toyworld.symbolic OUT` pretrained on symbolic photos (`training.json` holds its
command's settings, its log and its held-out accuracy). This test re-measures that accuracy on
the same held-out turns (same seed, same count) from the committed half-precision weights.
"""

from __future__ import annotations

import json

import pytest

from yollava_agent.toyworld.benchmark import WEIGHTS_DIR
from yollava_agent.toyworld.symbolic import GATE_TASKS, Encoder, held_out_accuracy, load_symbolic

SYMBOLIC = WEIGHTS_DIR / "symbolic"
TOLERANCE = 0.01
"""Two of 200 answers per task: what float rounding on another CPU (BLAS) can flip at a tie."""
GATE = 0.90


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads((SYMBOLIC / "training.json").read_text())


def test_the_symbolic_base_reproduces_its_reported_held_out_accuracy(report: dict) -> None:
    model, tokenizer = load_symbolic(SYMBOLIC)
    held_out = report["held_out"]
    assert model.config.slot_scale == pytest.approx(held_out["scale"])
    encoder = Encoder(tokenizer, report["config"]["sink_for_no"])
    measured = held_out_accuracy(model, encoder, held_out["per_task"], held_out["seed"])
    assert measured.keys() == held_out["accuracy"].keys()
    for key, value in held_out["accuracy"].items():
        assert measured[key] == pytest.approx(value, abs=TOLERANCE), key


def test_the_symbolic_base_passes_the_matching_gate(report: dict) -> None:
    accuracy = report["held_out"]["accuracy"]
    assert all(accuracy[task] >= GATE for task in GATE_TASKS), {t: accuracy[t] for t in GATE_TASKS}
