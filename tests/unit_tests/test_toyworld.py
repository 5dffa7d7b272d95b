"""The toy world: rendering, subjects and look-alikes, the generic language, the benchmark dataset."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yollava_agent.evaluation.dataset import load_dataset
from yollava_agent.evaluation.harness import EvalConfig, EvalReport
from yollava_agent.evaluation.metrics import ConceptResult
from yollava_agent.tiny import LLAVA_15_CHAT_TEMPLATE
from yollava_agent.toyworld import benchmark as bench
from yollava_agent.toyworld import language
from yollava_agent.toyworld.base import (
    IMAGE_TOKENS,
    build_processor,
    chat_text,
    encode,
    train_tokenizer,
)
from yollava_agent.toyworld.world import (
    IMAGE_SIZE,
    SUBJECT_NAMES,
    Look,
    Scene,
    generic_looks,
    look_alikes,
    place_objects,
    random_scene,
    render,
    subjects,
)
from yollava_agent.training.data import RECOGNITION_QUESTIONS

UNNAMED = ("shade", "style", "rim")


def _differences(a: Look, b: Look) -> set[str]:
    return {f.name for f in fields(Look) if getattr(a, f.name) != getattr(b, f.name)}


def test_rendering_is_fixed_by_the_seed() -> None:
    looks = generic_looks()

    def photos(seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        return [render(random_scene(rng, looks), rng).tobytes() for _ in range(5)]

    assert photos(3) == photos(3)
    assert photos(3) != photos(4)
    photo = render(random_scene(np.random.default_rng(0), looks), np.random.default_rng(0))
    assert photo.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and photo.dtype == np.uint8


def test_objects_never_overlap_and_stay_in_the_photo() -> None:
    rng = np.random.default_rng(0)
    looks = generic_looks()
    for _ in range(300):
        scene = random_scene(rng, looks)
        for i, a in enumerate(scene.objects):
            assert (
                a.radius <= a.x <= IMAGE_SIZE - a.radius
                and a.radius <= a.y <= IMAGE_SIZE - a.radius
            )
            for b in scene.objects[i + 1 :]:
                assert np.hypot(a.x - b.x, a.y - b.y) > a.radius + b.radius


def test_unnamed_attributes_change_the_pixels() -> None:
    """Shade, style and rim are what language cannot say; they must still be visible."""
    look = subjects()["bo"]
    rng = np.random.default_rng(0)
    (placed,) = place_objects(rng, [look], places=["middle"], sizes=["big"])
    for attribute in UNNAMED:
        other = next(a for a in look_alikes(look) if _differences(a, look) == {attribute})
        a = render(Scene((placed,), "paper"), np.random.default_rng(1)).astype(int)
        b = render(Scene((replace(placed, look=other),), "paper"), np.random.default_rng(1)).astype(
            int
        )
        assert np.abs(a - b).sum(axis=-1).max() > 100, attribute


def test_subjects_come_in_look_alike_groups_of_four() -> None:
    named = subjects()
    assert list(named) == list(SUBJECT_NAMES) and len(set(named.values())) == 20
    groups: dict[str, list[Look]] = {}
    for look in named.values():
        groups.setdefault(look.words, []).append(look)
    assert len(groups) == 5 and all(len(g) == 4 for g in groups.values())
    for group in groups.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                # Same words, and two of the three unnamed attributes differ.
                assert len(_differences(a, b)) == 2 and _differences(a, b) <= set(UNNAMED)
    generic = set(generic_looks())
    assert not generic & set(named.values())
    for look in named.values():
        alikes = look_alikes(look)
        assert all(
            len(_differences(a, look)) == 1 or {"pattern", "style"} >= _differences(a, look)
            for a in alikes
        )
        # Every one-unnamed-attribute look-alike exists in the generic world, never a subject.
        assert {a for a in alikes if _differences(a, look) <= set(UNNAMED)} <= generic


def test_another_world_seed_draws_new_look_alike_groups_of_four() -> None:
    default = subjects()
    for world in (1, 7):
        named = subjects(world)
        assert named == subjects(world), "a world seed must always draw the same subjects"
        assert list(named) == list(SUBJECT_NAMES) and len(set(named.values())) == 20
        assert {look.words for look in named.values()} != {look.words for look in default.values()}
        groups: dict[str, list[Look]] = {}
        for look in named.values():
            groups.setdefault(look.words, []).append(look)
        assert len(groups) == 5 and all(len(g) == 4 for g in groups.values())
        assert all(look.pattern != "plain" for look in named.values())
        assert not set(generic_looks(world)) & set(named.values())


def test_generic_examples_never_show_or_name_a_subject() -> None:
    rng = np.random.default_rng(0)
    looks = generic_looks()
    subject_looks = set(subjects().values())
    for _ in range(800):
        ex = language.example(rng, looks)
        if ex.scene is not None:
            assert not {o.look for o in ex.scene.objects} & subject_looks
        words = " ".join((*ex.texts, ex.answer)).replace(",", " ").replace(".", " ").split()
        assert not set(words) & set(SUBJECT_NAMES), ex


def test_presence_answers_follow_the_scene() -> None:
    patterns = [
        re.compile("^" + re.escape(q).replace(re.escape("{c}"), "(.+)") + "$")
        for q in RECOGNITION_QUESTIONS
    ]
    rng = np.random.default_rng(1)
    looks = generic_looks()
    answers = {"Yes": 0, "No": 0}
    for _ in range(400):
        ex = language.example(rng, looks, "presence")
        if "\n" in ex.texts[0]:
            continue  # the two-choice form
        # Several phrasings can match ("Is {c} in this photo?" and "Is {c} among..."): the
        # shortest capture is the phrase.
        phrase = min((m.group(1) for p in patterns if (m := p.match(ex.texts[0]))), key=len)
        present = any(
            language.noun_phrase(o.look, s) == phrase for o in ex.scene.objects for s in language.PRESENCE_PARTS
        )
        first = "Yes" if present else "No"
        assert ex.answer.startswith(first), ex
        answers[first] += 1
    assert min(answers.values()) > 100, answers


def test_examples_render_as_the_chat_template_does() -> None:
    rng = np.random.default_rng(2)
    looks = generic_looks()
    tokenizer = train_tokenizer(language.tokenizer_corpus(rng, looks, count=300), vocab_size=600)
    processor = build_processor(tokenizer)
    assert processor.chat_template == LLAVA_15_CHAT_TEMPLATE
    for kind in language.TASK_WEIGHTS:
        ex = language.example(rng, looks, kind)
        content = [{"type": "image"}] if ex.scene is not None else []
        content += [{"type": "text", "text": t} for t in ex.texts]
        turn = {"role": "user", "content": content}
        answer = {"role": "assistant", "content": [{"type": "text", "text": ex.answer}]}
        assert chat_text(ex, False) == processor.apply_chat_template(
            [turn], add_generation_prompt=True
        )
        assert chat_text(ex, True) == processor.apply_chat_template([turn, answer]).rstrip()
        encoded = encode(tokenizer, ex, rng)
        assert encoded.input_ids[-1] == tokenizer.eos_token_id
        if ex.scene is not None:
            photo = Image.fromarray(encoded.photo)
            expected = processor(text=chat_text(ex, False), images=[photo], return_tensors="pt")
            assert expected["input_ids"][0].tolist() == encoded.input_ids[: encoded.answer_start]
            assert (
                encoded.input_ids.count(tokenizer.convert_tokens_to_ids("<image>")) == IMAGE_TOKENS
            )


# ---- the benchmark dataset


@pytest.fixture(scope="module")
def benchmark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bench.write_dataset(tmp_path_factory.mktemp("toyworld") / "v1", seed=0)


def test_benchmark_dataset_follows_the_evaluation_layout(benchmark_root: Path) -> None:
    dataset = load_dataset(benchmark_root / "dataset")
    assert dataset.names == sorted(SUBJECT_NAMES)
    for concept in dataset.concepts:
        assert len(concept.train) == bench.TRAIN_PHOTOS and len(concept.test) == bench.TEST_PHOTOS
        assert len(concept.text_questions) == 3 and len(concept.visual_questions) == 4
        assert all(f"<{concept.name}>" in q.question for q in concept.questions)
    pool = sorted((benchmark_root / "pool").glob("*.png"))
    assert len(pool) == bench.POOL_SCENES + 20 * bench.POOL_LOOK_ALIKES
    assert Image.open(pool[0]).size == (IMAGE_SIZE, IMAGE_SIZE)


def test_benchmark_dataset_is_the_same_for_a_seed(benchmark_root: Path, tmp_path: Path) -> None:
    again = bench.write_dataset(tmp_path / "again", seed=0)

    def digest(root: Path) -> str:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return hashlib.sha256(
            b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
        ).hexdigest()

    assert digest(again) == digest(benchmark_root)


def test_a_perfect_description_reader_cannot_reject_the_subjects_look_alikes(
    benchmark_root: Path,
) -> None:
    ceiling = bench.description_ceiling(benchmark_root)
    assert ceiling["positive"] == 1.0
    # A subject's three group mates have its words: their 24 test photos are negatives that no
    # description can reject, and some other photos show a same-words look-alike as well.
    cannot_reject = 3 * bench.TEST_PHOTOS / (19 * bench.TEST_PHOTOS)
    for name in SUBJECT_NAMES:
        alone = bench.description_ceiling(benchmark_root, [name])
        assert alone["negative"] <= 1 - cannot_reject, name
    assert 0.5 < ceiling["weighted"] < 1 - cannot_reject / 2


def test_description_ceiling_scores_as_the_evaluation_does(tmp_path: Path) -> None:
    seen = {
        "a": {"words": "red plain star", "test": [["red plain star"], ["red plain star", "x"]]},
        "b": {"words": "red plain star", "test": [["red plain star"], ["y"]]},
        "c": {"words": "blue dotted square", "test": [["z"], ["red plain star"]]},
    }
    (tmp_path / bench.TEST_WORDS_FILE).write_text(json.dumps(seen))
    # a: yes to both of its photos, and to b's first and c's second (2 of 4 negatives).
    assert bench.description_ceiling(tmp_path, ["a"]) == {
        "positive": 1.0,
        "negative": 0.5,
        "weighted": 0.75,
    }
    # c: its own photos do not show "blue dotted square" (positive 0), no negative does either.
    assert bench.description_ceiling(tmp_path, ["c"])["weighted"] == 0.5
    # b: yes to one of its photos; to both of a's and c's second (3 of 4 negatives).
    assert bench.description_ceiling(tmp_path, ["b"])["weighted"] == (0.5 + 0.25) / 2
    assert bench.description_ceiling(tmp_path)["weighted"] == round((0.75 + 0.375 + 0.5) / 3, 4)
    with pytest.raises(ValueError, match=r"No subject \['d'\] in .*; its subjects are a, b, c"):
        bench.description_ceiling(tmp_path, ["a", "d"])


def test_negatives_are_split_by_whether_they_show_the_subjects_words(tmp_path: Path) -> None:
    seen = {
        "a": {"words": "red plain star", "test": [["red plain star"], ["red plain star"]]},
        "b": {"words": "red plain star", "test": [["red plain star", "x"], ["y"]]},
        "c": {"words": "blue dotted square", "test": [["z"], ["red plain star"]]},
    }
    (tmp_path / bench.TEST_WORDS_FILE).write_text(json.dumps(seen))

    def result(method: str, concept: str, said_yes_to: list[str]) -> ConceptResult:
        details = {"said_yes_to": said_yes_to} if method != "instant" else {}
        return ConceptResult(method, concept, 1.0, 0.5, details=details)

    report = EvalReport(
        dataset=tmp_path,
        model="made up",
        config=EvalConfig(),
        concepts=["a", "c"],
        results={
            # a's negatives with its words: b/0.png, c/1.png; others: b/1.png, c/0.png.
            "description": [
                result("description", "a", ["b/0.png", "c/1.png"]),
                result("description", "c", []),
            ],
            "trained": [result("trained", "a", ["c/0.png"]), result("trained", "c", ["a/0.png"])],
            "instant": [result("instant", "a", []), result("instant", "c", [])],
        },
    )
    split = bench.negatives_by_words(report, tmp_path)
    assert set(split) == {"description", "trained"}  # instant is not the base's answer
    # c has no negative with its words: its share there is undefined, so a's alone counts.
    assert split["description"] == {"with_its_words": 0.0, "others": 1.0}
    assert split["trained"] == {"with_its_words": 1.0, "others": round((0.5 + 0.75) / 2, 4)}


def test_an_interrupted_dataset_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(root: Path, seed: int) -> None:
        (root / "dataset").mkdir()
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(bench, "_write", crash)
    with pytest.raises(OSError, match="disk full"):
        bench.write_dataset(tmp_path / "v1")
    assert list(tmp_path.iterdir()) == []


def _fake_world(root: Path, text: str) -> None:
    (root / "dataset").mkdir(parents=True)
    (root / "dataset" / "qa.json").write_text(text)


def test_two_runs_writing_one_world_at_once_both_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "v1"

    def other_run_lands_first(staging: Path, seed: int) -> None:
        _fake_world(staging, "this run's copy")
        _fake_world(root, "the other run's copy")

    monkeypatch.setattr(bench, "_write", other_run_lands_first)
    assert bench.write_dataset(root) == root
    assert (root / "dataset" / "qa.json").read_text() == "the other run's copy"
    assert list(tmp_path.iterdir()) == [root]


def test_a_rename_onto_a_half_made_folder_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "v1"
    (root / "dataset").mkdir(parents=True)
    (root / "dataset" / "0.png").write_bytes(b"")
    monkeypatch.setattr(bench, "_write", lambda staging, seed: _fake_world(staging, "{}"))
    with pytest.raises(OSError, match="not empty"):
        bench.write_dataset(root)
    assert list(tmp_path.iterdir()) == [root]


# ---- the training script


def test_training_writes_models_that_load_through_the_normal_paths(tmp_path: Path) -> None:
    from yollava_agent.loading import load_llava
    from yollava_agent.toyworld.train import main as train
    from yollava_agent.training.negatives import ClipEmbedder

    out = tmp_path / "out"
    tiny = ["--base-steps", "2", "--base-batch", "8", "--eval-per-task", "2"]
    assert train([str(out), "--clip-steps", "2", "--clip-batch", "8", *tiny]) == 0
    runtime = load_llava(str(out / "llava"), device="cpu", dtype="fp32")
    assert runtime.model.config.vision_config.patch_size == 16
    embedder = ClipEmbedder(bench.clip_config(out))
    photo = Image.fromarray(render(random_scene(np.random.default_rng(0), generic_looks()), np.random.default_rng(0)))
    assert embedder.embed([photo]).shape == (1, 64)
    assert train([str(out), "--base-from", str(out / "llava"), "--tasks", "named_text", *tiny]) == 0
    report = json.loads((out / "training.json").read_text())
    assert [p["tasks"] for p in report["phases"]] == [None, ["named_text"]]
    assert report["base"]["steps"] == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging folders left behind"
