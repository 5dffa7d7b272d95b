"""The toyworld benchmark's CI subset: four subjects (two look-alike pairs), every subject a negative.

It runs `yollava eval --benchmark toyworld`'s code path (committed base and CLIP, the benchmark's
dataset and recipe) for `vanilla`, `description`, `reference` and `trained` on four subjects, and checks it
against the README's full run (`benchmarks/results/toyworld/results.json`): the same numbers for
these subjects within what float rounding on another CPU can move (TOLERANCE), hence the same
margins between methods; vanilla near 0.5 (the base knows nothing of the subjects); and generic
answers unchanged with the trained concepts loaded (not mentioned in the question: the README
reports what a concept prompt in the question does to them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yollava_agent.evaluation.methods import DESCRIPTION, REFERENCE, TRAINED, VANILLA
from yollava_agent.toyworld.benchmark import CI_CONCEPTS, run_benchmark

FULL_RUN = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "toyworld" / "results.json"
)
METHODS = (VANILLA, DESCRIPTION, REFERENCE, TRAINED)
TOLERANCE = 0.05
"""Weighted accuracy, mean of the four subjects: two flipped answers on a subject's 8 positives."""


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("toyworld-ci")
    return run_benchmark(
        out / "report", concepts=CI_CONCEPTS, methods=METHODS, root=out / "data", progress=False
    )


def _full_run_weighted(method: str) -> float:
    concepts = json.loads(FULL_RUN.read_text())["results"][method]["concepts"]
    return sum(concepts[name]["weighted"] for name in CI_CONCEPTS) / len(CI_CONCEPTS)


def test_the_subset_reproduces_the_full_runs_numbers_and_margins(subset) -> None:
    report = subset.report
    assert report.concepts == list(CI_CONCEPTS)
    weighted = {m: report.summary(m)["weighted"] for m in METHODS}
    full = {m: _full_run_weighted(m) for m in METHODS}
    print(json.dumps({"subset": weighted, "full run": full}, indent=1))  # with `pytest -s`
    for method in METHODS:
        assert weighted[method] == pytest.approx(full[method], abs=TOLERANCE), method
    for method in (VANILLA, DESCRIPTION, REFERENCE):
        margin = weighted[TRAINED] - weighted[method]
        assert margin >= full[TRAINED] - full[method] - TOLERANCE, (method, weighted, full)


def test_every_other_subject_is_a_negative(subset) -> None:
    report = subset.report
    result = report.result(TRAINED, "bo")
    assert result.counts["negatives"] == 19 * 8 and result.counts["positives"] == 8


def test_the_base_knows_nothing_of_the_subjects(subset) -> None:
    report = subset.report
    assert report.summary(VANILLA)["weighted"] == pytest.approx(0.5, abs=0.1)


def test_the_run_reports_what_a_perfect_description_reader_would_score(subset) -> None:
    written = json.loads(subset.paths["description_ceiling"].read_text())
    assert written == subset.ceiling
    assert written["positive"] == 1.0
    weighted = {m: subset.report.summary(m)["weighted"] for m in (DESCRIPTION, TRAINED)}
    assert weighted[TRAINED] > written["weighted"], (weighted, written)
    # A description passes the perfect reader only by rejecting photos that show the subject's
    # words, which no description tells apart: at most half that share, on a base that reads well.
    rejected_with_words = subset.negatives[DESCRIPTION]["with_its_words"]
    assert weighted[DESCRIPTION] <= written["weighted"] + rejected_with_words / 2, (
        weighted,
        written,
        rejected_with_words,
    )


def test_trained_tokens_reject_the_negatives_a_description_cannot(subset) -> None:
    with_words = {m: subset.negatives[m]["with_its_words"] for m in (DESCRIPTION, TRAINED)}
    assert with_words[TRAINED] > with_words[DESCRIPTION] + 0.5, subset.negatives
    assert json.loads(subset.paths["negatives_by_words"].read_text()) == subset.negatives


def test_loaded_concepts_leave_generic_answers_unchanged(subset) -> None:
    generic = subset.generic
    assert generic is not None
    assert generic["with_concepts_loaded"] == generic["base"]
