"""The evaluation harness on the tiny model: datasets, metrics, every method, reports and the CLI.

The tiny model's weights are random, so these tests prove mechanics (every method runs, numbers
are where they belong and computed as the paper defines them), never quality.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import HANG_SECONDS, make_photo
from yollava_agent.cli import main as cli_main
from yollava_agent.evaluation import (
    METHODS,
    ConceptResult,
    DatasetError,
    EvalConfig,
    evaluate,
    load_dataset,
    qa_accuracy,
    recognition_accuracy,
    summarise,
    write_report,
)
from yollava_agent.evaluation.methods import choose_negatives
from yollava_agent.evaluation.scoring import Query, candidate_logits
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder, NegativePool

REPO = Path(__file__).resolve().parents[2]
TINY_CLIP = ClipConfig(model_name="tiny")
FAST = TrainingConfig(
    epochs=2,
    batch_size=4,
    warmup_epochs=1,
    turns_per_positive=4,
    attribute_answer_tokens=4,
    learning_rate=1e-2,
    num_hard_negatives=2,
    num_easy_negatives=1,
)
COLOURS = {"ann": (220, 40, 30), "bob": (30, 60, 220), "cat": (40, 200, 60)}


def build_dataset(root: Path, test_copies_train: bool = False) -> Path:
    """3 concepts x (3 train + 2 test photos), a description for ann, visual and text questions."""
    for name, (r, g, b) in COLOURS.items():
        for split, count in (("train", 3), ("test", 2)):
            (root / name / split).mkdir(parents=True)
            for i in range(count):
                shade = 12 * i + (0 if split == "train" or test_copies_train else 30)
                make_photo((r, min(255, g + shade), b), size=(48 + 4 * i, 40)).save(
                    root / name / split / f"{i}.png"
                )
    (root / "ann" / "description.txt").write_text("a red square with a dark corner\n")
    qa = {
        name: [
            {"question": f"What colour is <{name}>?", "options": ["red", "blue"], "answer": 0},
            {
                "question": f"Is <{name}> round?",
                "options": ["yes", "no"],
                "answer": 1,
                "visual": False,
            },
            {
                "question": f"Where is the dark corner of <{name}>?",
                "options": ["top left", "bottom right"],
                "answer": 0,
                "image": "test/0.png",
            },
        ]
        for name in COLOURS
    }
    (root / "qa.json").write_text(json.dumps(qa, indent=1))
    return root


# ---- dataset


def test_dataset_reads_the_layout(tmp_path: Path) -> None:
    dataset = load_dataset(build_dataset(tmp_path / "ds"))
    assert dataset.names == ["ann", "bob", "cat"]
    ann = dataset.concept("ann")
    assert [p.name for p in ann.train] == ["0.png", "1.png", "2.png"] and len(ann.test) == 2
    assert ann.description == "a red square with a dark corner"
    assert dataset.concept("bob").description is None
    assert [q.visual for q in ann.questions] == [False, False, True]
    assert ann.visual_questions[0].image == tmp_path / "ds" / "ann" / "test" / "0.png"
    assert ann.text_questions[0].options == ("red", "blue") and ann.text_questions[1].answer == 1
    assert [c.name for c in dataset.others("bob")] == ["ann", "cat"]


def _qa(root: Path, change: Callable[[dict], None]) -> None:
    qa = json.loads((root / "qa.json").read_text())
    change(qa)
    (root / "qa.json").write_text(json.dumps(qa))


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing test folder": (lambda r: shutil.rmtree(r / "bob" / "test"), "bob/test"),
    "empty train folder": (
        lambda r: [p.unlink() for p in (r / "cat" / "train").iterdir()],
        "cat/train holds no photos",
    ),
    "unreadable photo": (
        lambda r: (r / "ann" / "train" / "1.png").write_bytes(b"not a png"),
        "ann/train/1.png",
    ),
    "bad concept name": (lambda r: (r / "ann").rename(r / "Bad Name"), "Bad Name"),
    "empty description": (
        lambda r: (r / "bob" / "description.txt").write_text(" \n"),
        "bob/description.txt",
    ),
    "qa not json": (lambda r: (r / "qa.json").write_text("{oops"), "qa.json is not valid JSON"),
    "qa unknown concept": (
        lambda r: _qa(r, lambda q: q.update(dan=[])),
        "concept 'dan' has no folder",
    ),
    "qa answer": (lambda r: _qa(r, lambda q: q["bob"][0].update(answer=2)), "bob[0].answer"),
    "qa options": (lambda r: _qa(r, lambda q: q["cat"][1].update(options=["a"])), "cat[1].options"),
    "qa question without the concept": (
        lambda r: _qa(r, lambda q: q["ann"][0].update(question="What colour?")),
        "ann[0].question",
    ),
    "qa missing image": (
        lambda r: _qa(r, lambda q: q["ann"][2].update(image="test/nope.png")),
        "ann/test/nope.png",
    ),
    "qa visual without image": (
        lambda r: _qa(r, lambda q: q["bob"][0].update(visual=True)),
        "bob[0].visual",
    ),
    "qa unknown field": (
        lambda r: _qa(r, lambda q: q["cat"][0].update(answers=1)),
        "unknown field 'answers'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_dataset_errors_name_the_bad_path(tmp_path: Path, case: str) -> None:
    root = build_dataset(tmp_path / "ds")
    breaking, expected = BROKEN[case]
    breaking(root)
    with pytest.raises(DatasetError) as error:
        load_dataset(root)
    assert expected in str(error.value)


def test_dataset_needs_a_folder_and_two_concepts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    root = build_dataset(tmp_path / "ds")
    (root / "qa.json").unlink()
    shutil.rmtree(root / "bob")
    shutil.rmtree(root / "cat")
    with pytest.raises(DatasetError, match=r"only one concept \(ann\)"):
        load_dataset(root)


# ---- metrics


def test_metrics_on_hand_made_predictions() -> None:
    positive, negative, weighted = recognition_accuracy(
        [True, True, False], [False, True, False, False]
    )
    assert (positive, negative) == (pytest.approx(2 / 3), pytest.approx(3 / 4))
    assert weighted == pytest.approx((2 / 3 + 3 / 4) / 2)
    always_no = recognition_accuracy([False, False], [False] * 5)
    assert always_no == (0.0, 1.0, 0.5)  # the paper's vanilla LLaVA
    assert qa_accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert qa_accuracy([], []) is None

    results = [
        ConceptResult("m", "a", 1.0, 0.5, visual_qa=1.0, text_qa=None, prompt_tokens=20),
        ConceptResult("m", "b", 0.5, 1.0, visual_qa=0.0, text_qa=0.5, prompt_tokens=20),
        ConceptResult("m", "c", 0.0, 1.0, visual_qa=None, text_qa=1.0, prompt_tokens=23),
    ]
    assert [r.weighted for r in results] == [0.75, 0.75, 0.5]
    mean = summarise(results)
    assert mean["positive"] == pytest.approx(0.5)
    assert mean["negative"] == pytest.approx(2.5 / 3)
    assert mean["weighted"] == pytest.approx(2 / 3)  # (mean positive + mean negative) / 2 too
    assert mean["visual_qa"] == pytest.approx(0.5)  # c has no visual questions: skipped
    assert mean["text_qa"] == pytest.approx(0.75)
    assert mean["prompt_tokens"] == pytest.approx(21.0)
    assert results[1].as_dict()["weighted"] == 0.75


def test_scoring_does_not_depend_on_batching(runtime) -> None:
    photos = [make_photo((20 * i, 90, 200 - 15 * i), size=(40 + 3 * i, 32 + i)) for i in range(5)]
    queries = [Query("Is bo in this photo?", p) for p in photos]
    answers = ["Yes, bo is in this photo.", "No, bo is not in this photo."]
    batched = candidate_logits(runtime, queries, [], answers, batch_size=4)
    single = candidate_logits(runtime, queries, [], answers, batch_size=1)
    assert torch.allclose(batched, single, atol=1e-5)
    # "A" and "B" share a leading piece in the tiny tokenizer: it joins the prompt first.
    text = [Query("What colour is bo?\nA. red\nB. blue"), Query("Is bo big?\nA. yes\nB. no")]
    assert torch.allclose(
        candidate_logits(runtime, text, [], ["A", "B"], batch_size=2),
        candidate_logits(runtime, text, [], ["A", "B"], batch_size=1),
        atol=1e-5,
    )


def test_ablation_negatives_are_random_and_as_many(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds")
    dataset = load_dataset(root)
    embedder = ClipEmbedder(TINY_CLIP)
    pool = NegativePool(
        [p for c in dataset.others("ann") for p in c.train], embedder, cache_dir=tmp_path / "cache"
    )
    positives = [Image.open(p).convert("RGB") for p in dataset.concept("ann").train]
    chosen = choose_negatives(positives, pool, FAST)
    assert chosen.counts == {"pool": 6, "hard": 2, "easy": 1, "random": 3}
    assert len(chosen.hard) == len(chosen.random) == 3
    scores = (pool.embeddings() @ embedder.embed(positives).T).max(dim=1).values
    nearest = [pool.label(int(i)) for i in scores.argsort(descending=True)[:2]]
    assert [label for label, _ in chosen.hard[:2]] == nearest


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reference_photos", 0, "EvalConfig.reference_photos must be a positive integer, got 0."),
        ("train_photos", 0, "EvalConfig.train_photos must be a positive integer or None, got 0."),
        ("train_photos", "5", "EvalConfig.train_photos must be a positive integer or None, got '5'."),
    ],
)
def test_config_names_a_bad_photo_count(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EvalConfig(**{field: value})


def test_config_rejects_unknown_methods() -> None:
    with pytest.raises(ValueError, match="'retrieval'"):
        EvalConfig(methods=["vanilla", "retrieval"])
    assert list(EvalConfig(methods=["trained", "vanilla", "trained"]).methods) == [
        "vanilla",
        "trained",
    ]


# ---- the harness, every method


@pytest.fixture(scope="module")
def report_files(tmp_path_factory: pytest.TempPathFactory):
    from yollava_agent import shared_runtime

    tmp = tmp_path_factory.mktemp("eval")
    runtime = shared_runtime("tiny", "cpu", "fp32")
    runtime.set_concepts([])
    config = EvalConfig(
        training=FAST, clip=TINY_CLIP, description_tokens=8, cache_dir=tmp / "cache"
    )
    report = evaluate(build_dataset(tmp / "ds"), runtime, config, progress=False)
    assert runtime.injected == {}, "the harness left concepts injected"
    return report, write_report(report, tmp / "out")


def test_harness_reports_every_method_and_concept(report_files) -> None:
    _, paths = report_files
    data = json.loads(paths["json"].read_text())
    assert data["methods"] == list(METHODS)
    assert data["concepts"] == ["ann", "bob", "cat"]
    assert data["model"] == "tiny" and data["config"]["training"]["epochs"] == 2
    for method in METHODS:
        block = data["results"][method]
        assert set(block["concepts"]) == {"ann", "bob", "cat"}
        for name, numbers in block["concepts"].items():
            assert numbers["counts"]["positives"] == 2 and numbers["counts"]["negatives"] == 4
            for metric in ("positive", "negative", "weighted"):
                assert 0.0 <= numbers[metric] <= 1.0, (method, name, metric)
            assert numbers["weighted"] == pytest.approx(
                (numbers["positive"] + numbers["negative"]) / 2
            )
            for metric in ("visual_qa", "text_qa"):
                if method == "instant":
                    assert numbers[metric] is None  # CLIP answers no questions
                else:
                    assert 0.0 <= numbers[metric] <= 1.0, (method, name, metric)
        mean = block["mean"]
        assert mean["weighted"] == pytest.approx(
            sum(c["weighted"] for c in block["concepts"].values()) / 3
        )
    results = data["results"]
    assert results["trained"]["concepts"]["bob"]["counts"]["text_questions"] == 2
    assert results["trained"]["concepts"]["bob"]["counts"]["visual_questions"] == 1
    assert results["vanilla"]["mean"]["prompt_tokens"] == 0
    assert results["instant"]["mean"]["prompt_tokens"] == 0
    assert results["trained"]["mean"]["prompt_tokens"] >= 17  # <bo> and 16 latent tokens, at least
    assert results["description"]["concepts"]["ann"]["details"]["description_source"] == "dataset"
    assert results["description"]["concepts"]["bob"]["details"]["description_source"] == "generated"
    counts = results["trained-no-hard-negatives"]["concepts"]["ann"]["details"]["negative_counts"]
    assert counts == {"pool": 6, "hard": 2, "easy": 1, "random": 3}
    assert 0.0 < results["instant"]["concepts"]["cat"]["details"]["threshold"] <= 1.0
    reference = results["reference"]["concepts"]["ann"]
    assert reference["details"]["reference_photos"] == 3  # every train photo of three
    # Three photos' image tokens plus "ann is in the first 3 photos.": more than one photo's.
    assert reference["prompt_tokens"] > 3 * _image_tokens_per_photo()


def test_the_report_names_the_photos_and_questions_each_method_got_wrong(report_files) -> None:
    _, paths = report_files
    data = json.loads(paths["json"].read_text())
    dataset = load_dataset(data["dataset"])
    for method in ("vanilla", "description", "reference", "trained"):
        for name, result in data["results"][method]["concepts"].items():
            concept = dataset.concept(name)
            own = {path.name for path in concept.test}
            others = {f"{o.name}/{path.name}" for o in dataset.others(name) for path in o.test}
            said_no_to = result["details"]["said_no_to"]
            said_yes_to = result["details"]["said_yes_to"]
            assert set(said_no_to) <= own and set(said_yes_to) <= others, (method, name)
            counts = result["counts"]
            assert len(said_no_to) == round((1 - result["positive"]) * counts["positives"])
            assert len(said_yes_to) == round((1 - result["negative"]) * counts["negatives"])
            missed = result["details"]["missed_questions"]
            asked = {q.where for q in (*concept.visual_questions, *concept.text_questions)}
            assert set(missed) <= asked, (method, name, missed)
            wrong_answers = (1 - result["visual_qa"]) * counts["visual_questions"] + (
                1 - result["text_qa"]
            ) * counts["text_questions"]
            assert len(missed) == round(wrong_answers), (method, name)


def _image_tokens_per_photo() -> int:
    from yollava_agent import shared_runtime

    runtime = shared_runtime("tiny", "cpu", "fp32")
    processor = runtime.processor
    expanded = processor(text=processor.image_token, images=[make_photo((1, 2, 3))], return_tensors="pt")
    image_id = runtime.tokenizer.convert_tokens_to_ids(processor.image_token)
    return int((expanded["input_ids"] == image_id).sum())


def test_reference_questions_show_the_train_photos_before_the_question_photo(runtime) -> None:
    from yollava_agent.evaluation.scoring import conversation

    first, second, asked = (make_photo(c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200)))
    query = Query("ann is in the first 2 photos. Is ann in the last photo?", asked, (first, second))
    assert query.images == [first, second, asked]
    content = conversation(query, [])[0]["content"]
    assert [part["type"] for part in content] == ["image", "image", "image", "text"]
    alone = Query("ann is in the first 2 photos. Is ann in the last photo?", asked)
    with_references = candidate_logits(runtime, [query], [], ["Yes", "No"])
    without = candidate_logits(runtime, [alone], [], ["Yes", "No"])
    assert not torch.allclose(with_references, without), "the reference photos did not reach the model"


def test_train_photos_limits_what_every_method_sees(runtime, tmp_path: Path) -> None:
    config = EvalConfig(
        methods=["reference"], training=FAST, clip=TINY_CLIP, train_photos=1, reference_photos=3,
        cache_dir=tmp_path / "cache",
    )
    report = evaluate(build_dataset(tmp_path / "ds"), runtime, config, progress=False)
    for name in COLOURS:
        assert report.result("reference", name).details["reference_photos"] == 1


def test_harness_writes_markdown_and_chart(report_files) -> None:
    _, paths = report_files
    text = paths["markdown"].read_text()
    for name in [*METHODS, "ann", "bob", "cat", "weighted", "visual QA", "prompt tokens"]:
        assert name in text
    with Image.open(paths["chart"]) as chart:
        assert chart.format == "PNG" and chart.size == (960, 520)
        assert len(chart.getcolors(maxcolors=100_000) or []) > 5  # bars were drawn


def test_instant_recognises_copies_of_the_train_photos(runtime, tmp_path: Path) -> None:
    from yollava_agent import memory, recognition

    assert memory.calibrate_threshold is recognition.calibrate_threshold  # one rule, in the core
    root = build_dataset(tmp_path / "ds", test_copies_train=True)
    config = EvalConfig(methods=["instant"], clip=TINY_CLIP)
    report = evaluate(root, runtime, config, progress=False)
    assert [r.positive for r in report.results["instant"]] == [1.0, 1.0, 1.0]


# ---- the command line


def test_cli_eval_end_to_end(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "yollava_agent.ui.cli",
        "eval",
        str(root),
        "--model",
        "tiny",
        "--clip-model",
        "tiny",
        "--clip-pretrained",
        "none",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=HANG_SECONDS, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)  # the tiny model's table, shown with `pytest -s`
    for method in METHODS:
        assert f"| {method} |" in done.stdout
    assert "eval:" in done.stderr and "3/3" in done.stderr  # the progress bar over concepts
    data = json.loads((out / "results.json").read_text())
    assert data["methods"] == list(METHODS) and data["config"]["training"]["epochs"] == 2
    assert (out / "results.md").is_file() and (out / "results.png").is_file()


def test_cli_eval_names_a_broken_dataset_before_loading_a_model(tmp_path: Path, capsys) -> None:
    root = build_dataset(tmp_path / "ds")
    (root / "cat" / "test" / "1.png").write_bytes(b"broken")
    assert cli_main(["eval", str(root), "--model", "no/such-model"]) == 1
    assert "cat/test/1.png" in capsys.readouterr().err


def test_a_concept_subset_keeps_every_other_concept_as_a_negative(runtime, tmp_path: Path) -> None:
    made: list[tuple[str, str]] = []
    config = EvalConfig(
        methods=["vanilla", "trained"], concepts=["bob"], training=FAST, clip=TINY_CLIP,
        cache_dir=tmp_path / "cache",
    )
    report = evaluate(
        build_dataset(tmp_path / "ds"), runtime, config, progress=False,
        on_trained=lambda method, active: made.append((method, active.name)),
    )
    assert report.concepts == ["bob"]
    for method in ("vanilla", "trained"):
        (result,) = report.results[method]
        assert result.concept == "bob"
        assert result.counts["negatives"] == 4  # ann's and cat's test photos
    assert made == [("trained", "bob")]
    assert report.as_dict()["config"]["concepts"] == ["bob"]


def test_a_subset_naming_an_unknown_concept_fails_before_training(runtime, tmp_path: Path) -> None:
    config = EvalConfig(methods=["vanilla"], concepts=["zed"], clip=TINY_CLIP)
    with pytest.raises(DatasetError, match=r"no concept 'zed'.*\['ann', 'bob', 'cat'\]"):
        evaluate(build_dataset(tmp_path / "ds"), runtime, config, progress=False)
    with pytest.raises(ValueError, match="at least one concept"):
        EvalConfig(concepts=[])


def test_cli_eval_needs_a_dataset_or_a_benchmark_and_not_both(tmp_path: Path, capsys) -> None:
    assert cli_main(["eval"]) == 1
    assert "Name a dataset folder" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path), "--benchmark", "toyworld"]) == 1
    assert f"makes its own dataset; drop '{tmp_path}'" in capsys.readouterr().err
    assert cli_main(["eval", "--benchmark", "toyworld", "--epochs", "3"]) == 1
    assert "--epochs do not apply to --benchmark toyworld" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path), "--base", "photos"]) == 1
    assert "--base photos chooses the base of --benchmark toyworld" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path), "--ablation", "bo"]) == 1
    assert "--ablation draws the toyworld benchmark's curves" in capsys.readouterr().err


def test_a_toyworld_base_is_a_name_or_a_saved_llava_and_brings_its_recipe(tmp_path: Path) -> None:
    from yollava_agent.toyworld import benchmark as bench

    assert bench.base_folder("photos") == bench.WEIGHTS_DIR / "photos"
    with pytest.raises(ValueError, match=r"'nowhere' is neither a toyworld base \(photos\)"):
        bench.base_folder("nowhere")
    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert bench.benchmark_training(folder, seed=3) == replace(bench.BENCHMARK_TRAINING, seed=3)
    (folder / "training.json").write_text(json.dumps({"eye": {}}))
    photos = bench.benchmark_training(folder, seed=3)
    assert photos == bench.benchmark_training("photos", seed=3)
    assert (photos.learning_rate, photos.output_learning_rate) == (0.05, 1e-3)
    assert (photos.latent_init, photos.seed) == ("image", 3)


def test_ablation_curves_train_with_fewer_photos_and_tokens(report_files, runtime, tmp_path: Path) -> None:
    from yollava_agent.toyworld.ablation import run_ablations, write_ablation

    report, _ = report_files
    config = EvalConfig(
        methods=["trained"], training=FAST, clip=TINY_CLIP, cache_dir=tmp_path / "cache"
    )
    curves = run_ablations(build_dataset(tmp_path / "ds"), runtime, config, report, ["ann"], False)
    assert list(curves["train_photos"]) == ["1", "3", "5"]
    assert list(curves["latent_tokens"]) == ["0", "4", "16"]
    full = report.result("trained", "ann").weighted
    assert curves["train_photos"]["5"] == curves["latent_tokens"]["16"] == pytest.approx(full, abs=1e-4)
    assert all(0.0 <= v <= 1.0 for curve in ("train_photos", "latent_tokens") for v in curves[curve].values())
    paths = write_ablation(curves, tmp_path / "out")
    assert json.loads(paths["ablation"].read_text()) == curves
    with Image.open(paths["ablation_chart"]) as chart:
        assert chart.format == "PNG" and len(chart.getcolors(maxcolors=100_000) or []) > 5
