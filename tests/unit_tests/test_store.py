"""`ConceptStore` on an embedded Chroma, with the tiny random CLIP (32-d) and a temporary data folder.

The tiny CLIP has random weights, so similarities only mean "same pixels or not": concepts are
solid-colour photos (reds, greens) that it tells apart, and thresholds are calibrated on a pool
of other colours as in production. Tests marked `xfail(strict=True)` pin bugs of the store that
are reported, not fixed here: each fails today, and turns into an error the day the bug is fixed
(remove the marker then).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import chromadb.errors
import numpy as np
import pytest
import torch
import yollava_agent.memory.store as store_module
from PIL import Image
from yollava_agent.memory import (
    ConceptExistsError,
    ConceptStore,
    Recognition,
    StoreError,
    StoreWriteError,
    calibrate_threshold,
)
from yollava_agent.memory.store import DEFAULT_THRESHOLD, _record_id, _user_folder

from tests.conftest import HANG_SECONDS, make_photo
from yollava_agent.errors import ImageInputError, InvalidConceptNameError, UnknownConceptError
from yollava_agent.training.negatives import ClipConfig

REPO = Path(__file__).resolve().parents[2]
TINY = ClipConfig(model_name="tiny")

REDS = [(200 + 5 * i, 30 + 3 * i, 30) for i in range(5)]
GREENS = [(30, 200 + 5 * i, 30 + 3 * i) for i in range(3)]
POOL_COLOURS = [
    (20, 20, 220),
    (240, 240, 240),
    (10, 10, 10),
    (220, 220, 20),
    (20, 200, 200),
    (120, 120, 120),
]


# ---- helpers


def _store(home: Path, **kwargs: Any) -> ConceptStore:
    return ConceptStore(home=home, clip=TINY, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> ConceptStore:
    return _store(tmp_path / "home")


def _save(
    folder: Path, colours: list[tuple[int, int, int]], prefix: str, suffix: str = ".png"
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(colours):
        path = folder / f"{prefix}{i}{suffix}"
        make_photo(colour).save(path)
        paths.append(path)
    return paths


def _pool(folder: Path) -> Path:
    _save(folder, POOL_COLOURS, "neg")
    return folder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(home: Path, *, skip_chroma: bool = True) -> dict[str, str]:
    """Every file under the data folder (Chroma's own files aside) with the sha256 of its bytes."""
    found = {}
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if path.is_file() and not (skip_chroma and relative.parts[0] == "chroma"):
            found[relative.as_posix()] = _sha(path.read_bytes())
    return found


def _records(store: ConceptStore) -> dict[str, dict[str, tuple[str, str | None, bytes]]]:
    """Everything in every collection: id -> (metadata, document, embedding bytes)."""
    snapshot = {}
    for name in ("concepts", "photos", "facts", "negatives"):
        got = getattr(store, name).get(include=["metadatas", "documents", "embeddings"])
        snapshot[name] = {
            record_id: (
                json.dumps(metadata, sort_keys=True),
                document,
                np.asarray(vector, np.float32).tobytes(),
            )
            for record_id, metadata, document, vector in zip(
                got["ids"], got["metadatas"], got["documents"], got["embeddings"], strict=True
            )
        }
    return snapshot


def _state(store: ConceptStore) -> tuple[dict[str, str], dict[str, Any]]:
    return _files(store.home), _records(store)


def _embed(store: ConceptStore, photos: list[Any]) -> torch.Tensor:
    return store.embedder.embed(
        [Image.open(p).convert("RGB") if isinstance(p, Path) else p for p in photos]
    )


class _Blinded:
    """A collection whose first `get(ids=...)` sees nothing: a writer elsewhere was not visible yet."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self._blind = True

    def get(self, *args: Any, **kwargs: Any) -> Any:
        if self._blind and "ids" in kwargs:
            self._blind = False
            return {"ids": [], "metadatas": [], "documents": [], "embeddings": None}
        return self._collection.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


# ---- calibrate_threshold


def _unit(*rows: list[float]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


P1, P2 = (
    [1.0, 0.0, 0.0],
    [0.9, math.sqrt(1 - 0.81), 0.0],
)  # the photos: similarity 0.9 to each other


def test_calibration_separating_goes_halfway_between_photos_and_negatives() -> None:
    negatives = _unit([0.5, 0.0, math.sqrt(0.75)], [0.0, 0.0, 1.0])  # best similarity 0.5 (to P1)
    assert calibrate_threshold(_unit(P1, P2), negatives) == pytest.approx((0.9 + 0.5) / 2, abs=1e-6)


def test_calibration_overlapping_goes_just_above_the_highest_negative() -> None:
    negatives = _unit([0.95, 0.0, math.sqrt(1 - 0.95**2)])  # closer to P1 than P2 is
    assert calibrate_threshold(_unit(P1, P2), negatives) == pytest.approx(0.95 + 0.05 / 4, abs=1e-6)
    touching = _unit(
        [0.9, 0.0, math.sqrt(1 - 0.81)]
    )  # exactly as close as the photos: not separated
    assert calibrate_threshold(_unit(P1, P2), touching) == pytest.approx(0.9 + 0.1 / 4, abs=1e-6)


def test_calibration_without_negatives() -> None:
    none = torch.zeros((0, 3))
    assert (
        calibrate_threshold(_unit(P1), none) == DEFAULT_THRESHOLD
    )  # one photo, nothing to compare
    assert (
        calibrate_threshold(_unit(P1, P2), none) == DEFAULT_THRESHOLD
    )  # photos agree above the default
    far = _unit(P1, [0.5, math.sqrt(0.75), 0.0])  # photos only 0.5 alike: their own similarity wins
    assert calibrate_threshold(far, none) == pytest.approx(0.5, abs=1e-6)


def test_calibration_with_one_photo_stays_above_every_negative() -> None:
    negatives = _unit([0.6, 0.8, 0.0])
    assert calibrate_threshold(_unit(P1), negatives) == pytest.approx(0.6 + 0.4 / 4, abs=1e-6)


# ---- add, get, list, persistence


def test_add_get_list_round_trip(store: ConceptStore, tmp_path: Path) -> None:
    photos = _save(tmp_path / "in", REDS[:3], "bo")
    added = store.add_concept("alice", "bo", photos, description="my orange cat")
    assert (added.user_id, added.name, added.status, added.description) == (
        "alice",
        "bo",
        "taught",
        "my orange cat",
    )
    assert added.photo_count == 3
    assert added.artifact_path == "" and added.error == ""
    assert 0.0 < added.threshold <= 1.0
    assert added.created and added.updated == added.created
    assert store.get_concept("alice", "bo") == added
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS[:1], "kiwi"))
    assert [c.name for c in store.list_concepts("alice")] == ["bo", "kiwi"]
    assert store.list_concepts("nobody") == []

    ready = store.set_status(
        "alice", "bo", "ready", artifact_path=store.artifact_dir("alice", "bo")
    )
    assert ready.status == "ready" and ready.artifact_path == str(store.artifact_dir("alice", "bo"))
    with pytest.raises(ValueError, match=r"Unknown status 'done'"):
        store.set_status("alice", "bo", "done")  # type: ignore[arg-type]


def test_a_new_store_on_the_same_folder_sees_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    photos = _save(tmp_path / "in", REDS[:3], "bo")
    first = _store(home)
    record = first.add_concept("alice", "bo", photos, description="cat")
    first.remember("alice", "bo", "bo likes tuna")
    del first

    second = _store(home)
    assert second.get_concept("alice", "bo") == record
    assert [f.text for f in second.list_facts("alice", "bo")] == ["bo likes tuna"]
    assert [r.name for r in second.recognize("alice", photos[0])] == ["bo"]

    # And in another process, which cannot share anything in memory with this one.
    reader = (
        "import json, sys\n"
        "from yollava_agent.memory import ConceptStore\n"
        "from yollava_agent.training.negatives import ClipConfig\n"
        "s = ConceptStore(home=sys.argv[1], clip=ClipConfig(model_name='tiny'))\n"
        "c = s.get_concept('alice', 'bo')\n"
        "print(json.dumps({'names': [x.name for x in s.list_concepts('alice')], 'threshold': c.threshold,\n"
        "    'facts': [f.text for f in s.list_facts('alice', 'bo')],\n"
        "    'seen': [[r.name, r.score] for r in s.recognize('alice', sys.argv[2])],\n"
        "    'bob': [x.name for x in s.list_concepts('bob')]}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", reader, str(home), str(photos[1])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["names"] == ["bo"] and seen["bob"] == []
    assert seen["threshold"] == pytest.approx(record.threshold)
    assert seen["facts"] == ["bo likes tuna"]
    assert [name for name, _ in seen["seen"]] == ["bo"] and seen["seen"][0][1] > 0.999


def test_photos_are_copied_by_content_hash(store: ConceptStore, tmp_path: Path) -> None:
    png, jpg = tmp_path / "a.png", tmp_path / "b.JPG"
    make_photo(REDS[0]).save(png)
    make_photo(REDS[1]).save(jpg, format="JPEG")
    pil = make_photo(REDS[2])
    originals = {p: p.read_bytes() for p in (png, jpg)}

    record = store.add_concept(
        "alice", "bo", [png, jpg, pil, png]
    )  # the same file twice: kept once
    assert record.photo_count == 3
    stored = store.photo_paths("alice", "bo")
    folder = store.concept_dir("alice", "bo") / "photos"
    assert folder.is_dir() and all(p.parent == folder for p in stored)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in stored
    )  # nothing else
    by_name = {p.name: p for p in stored}
    assert by_name[_sha(originals[png]) + ".png"].read_bytes() == originals[png]
    assert (
        by_name[_sha(originals[jpg]) + ".jpg"].read_bytes() == originals[jpg]
    )  # suffix lower-cased
    files = {_sha(originals[png]) + ".png", _sha(originals[jpg]) + ".jpg"}
    (pil_copy,) = [p for name, p in by_name.items() if name not in files]
    assert pil_copy.name == _sha(pil_copy.read_bytes()) + ".png"
    assert np.array_equal(np.asarray(Image.open(pil_copy).convert("RGB")), np.asarray(pil))
    assert {p: p.read_bytes() for p in (png, jpg)} == originals  # sources untouched, not moved
    # The folder of a user is a hash of the user id, never the id itself (ids are emails, paths...).
    assert store.concept_dir("../alice", "bo").parent.parent.name == _user_folder("../alice")
    assert "alice" not in str(store.concept_dir("alice", "bo").relative_to(store.home))


def test_every_collection_uses_our_clip_function_never_chromas_default(store: ConceptStore) -> None:
    for collection in (store.concepts, store.photos, store.facts, store.negatives):
        function = collection.configuration_json["embedding_function"]
        assert (function["type"], function["name"]) == ("known", "yollava-clip")
        assert collection.configuration_json["hnsw"]["space"] == "cosine"
    # Text without vectors reaches our function, which refuses it, instead of a downloading default.
    with pytest.raises(TypeError, match="embeds images only"):
        store.facts.add(ids=["x"], documents=["hello"])


# ---- recognition


def test_recognize_finds_the_concept_in_its_photos_and_near_copies(
    store: ConceptStore, tmp_path: Path
) -> None:
    store.index_pool(_pool(tmp_path / "pool"))
    photos = _save(tmp_path / "in", REDS, "bo")
    record = store.add_concept("alice", "bo", photos)
    assert record.threshold > DEFAULT_THRESHOLD  # calibrated on the pool, not the default

    near = make_photo(REDS[0])
    near.putpixel((30, 30), (0, 0, 0))
    buffer = io.BytesIO()
    make_photo(REDS[2]).save(buffer, format="JPEG", quality=85)
    for query in (
        photos[0],
        Image.open(photos[3]),
        near,
        buffer.getvalue(),
        make_photo(REDS[2]).transpose(Image.FLIP_LEFT_RIGHT),
    ):
        found = store.recognize("alice", query)
        assert [r.name for r in found] == ["bo"], query
        assert found[0].threshold == record.threshold
        assert found[0].score >= record.threshold
    exact = store.recognize("alice", photos[0])[0]
    assert exact == Recognition("bo", pytest.approx(1.0, abs=1e-5), record.threshold)
    # The score is the best cosine similarity to the concept's photos: with the threshold out of
    # the way, a green photo scores what CLIP says (about 0.7 for the tiny model).
    store.concepts.update(ids=[_record_id("alice", "bo")], metadatas=[{"threshold": -1.0}])
    green = make_photo(GREENS[0])
    expected = float((_embed(store, [green]) @ _embed(store, photos).T).max())
    assert expected < 0.9
    assert store.recognize("alice", green) == [
        Recognition("bo", pytest.approx(expected, abs=1e-4), -1.0)
    ]


def test_recognize_ignores_different_photos_and_concept_free_users(
    store: ConceptStore, tmp_path: Path
) -> None:
    store.index_pool(_pool(tmp_path / "pool"))
    photos = _save(tmp_path / "in", REDS, "bo")
    record = store.add_concept("alice", "bo", photos)
    green = make_photo(GREENS[0])
    best = float((_embed(store, [green]) @ _embed(store, photos).T).max())
    assert best < record.threshold  # what the store is expected to see
    assert store.recognize("alice", green) == []
    assert store.recognize("carol", photos[0]) == []  # carol has no concepts: nothing, not alice's
    with pytest.raises(ValueError, match="User id '' is not valid"):
        store.recognize("", photos[0])


def test_recognize_ranks_several_concepts_best_first(store: ConceptStore, tmp_path: Path) -> None:
    store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:3], "bo"))
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS, "kiwi"))
    thresholds = {c.name: c.threshold for c in store.list_concepts("alice")}
    assert [r.name for r in store.recognize("alice", make_photo(GREENS[1]))] == ["kiwi"]
    # Lower both thresholds: a photo then matches both, ranked by score.
    for name in thresholds:
        store.concepts.update(ids=[_record_id("alice", name)], metadatas=[{"threshold": -1.0}])
    found = store.recognize("alice", make_photo(REDS[1]))
    assert [r.name for r in found] == ["bo", "kiwi"]
    assert found[0].score > found[1].score


# ---- calibration in the store, and the negative pool


def test_index_pool_is_incremental_and_raises_thresholds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = _store(home)
    photos = _save(tmp_path / "in", REDS, "bo")
    before_pool = store.add_concept("alice", "bo", photos).threshold
    assert before_pool == DEFAULT_THRESHOLD  # near-identical photos, nothing else: the default

    pool = _pool(tmp_path / "pool")
    (pool / "notes.txt").write_text("not a photo")
    (pool / "broken.png").write_bytes(b"not a png")
    assert store.index_pool(pool) == len(POOL_COLOURS)
    assert store.index_pool(pool) == 0
    make_photo((150, 20, 150)).save(pool / "sub-neg.png")
    assert store.index_pool(pool) == 1
    assert store.negatives.count() == len(POOL_COLOURS) + 1
    assert _store(home).index_pool(pool) == 0  # remembered across store objects

    after_pool = store.add_concept("bob", "bo", photos).threshold
    assert after_pool > before_pool
    pool_vectors = _embed(
        store, sorted(p for p in pool.iterdir() if p.name.startswith(("neg", "sub")))
    )
    assert after_pool == pytest.approx(
        calibrate_threshold(_embed(store, photos), pool_vectors), abs=1e-5
    )
    # A pool photo that looks like the concept stays below the threshold.
    assert store.recognize("bob", pool / "neg0.png") == []


def test_calibration_uses_the_users_other_concepts_but_not_other_users(
    store: ConceptStore, tmp_path: Path
) -> None:
    reds, greens = _save(tmp_path / "in", REDS[:3], "bo"), _save(tmp_path / "in", GREENS, "kiwi")
    store.add_concept("alice", "bo", reds)
    kiwi = store.add_concept("alice", "kiwi", greens)
    assert kiwi.threshold == pytest.approx(
        calibrate_threshold(_embed(store, greens), _embed(store, reds)), abs=1e-5
    )
    bobs = store.add_concept("bob", "kiwi", greens)
    assert bobs.threshold == pytest.approx(
        calibrate_threshold(_embed(store, greens), torch.zeros((0, 1))), abs=1e-6
    )
    assert bobs.threshold != pytest.approx(kiwi.threshold)


# ---- users


def test_one_user_cannot_touch_another_users_concept(store: ConceptStore, tmp_path: Path) -> None:
    photos = _save(tmp_path / "in", REDS[:3], "bo")
    store.add_concept("alice", "bo", photos, description="alice's cat")
    store.add_concept("alice", "secretplan", _save(tmp_path / "in", GREENS[:1], "s"))
    fact = store.remember("alice", "bo", "bo likes tuna")
    store.add_concept("bob", "rex", _save(tmp_path / "in", [(20, 20, 220)], "rex"))
    before = _state(store)

    assert [c.name for c in store.list_concepts("bob")] == ["rex"]
    assert {r.name for r in store.recognize("bob", photos[0])} <= {"rex"}  # only ever bob's own
    attempts = {
        "get": lambda: store.get_concept("bob", "bo"),
        "remember": lambda: store.remember("bob", "bo", "bo is mine now"),
        "list_facts": lambda: store.list_facts("bob", "bo"),
        "forget_fact": lambda: store.forget_fact("bob", "bo", fact.id),
        "forget": lambda: store.forget("bob", "bo"),
        "photo_paths": lambda: store.photo_paths("bob", "bo"),
        "set_status": lambda: store.set_status("bob", "bo", "ready"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(UnknownConceptError) as raised:
            attempt()
        message = str(raised.value)
        assert "'bo'" in message, what
        assert "rex" in message, what  # bob's own concepts, to help him
        assert "secretplan" not in message and "alice" not in message, (
            what
        )  # nothing of alice's leaks

    assert _state(store) == before  # nothing changed anywhere
    assert [f.text for f in store.list_facts("alice", "bo")] == ["bo likes tuna"]
    assert [r.name for r in store.recognize("alice", photos[0])] == ["bo"]
    # bob may have a concept of the same name: it is his own, with his own photos and facts.
    store.add_concept("bob", "bo", _save(tmp_path / "in", GREENS[1:], "bobs"))
    assert store.list_facts("bob", "bo") == []
    assert "bo" not in {r.name for r in store.recognize("bob", photos[0])}  # bob's bo is green
    assert store.get_concept("alice", "bo").description == "alice's cat"


def test_invalid_user_ids_are_refused(store: ConceptStore, tmp_path: Path) -> None:
    photos = _save(tmp_path / "in", REDS[:1], "bo")
    for bad in ("", "   ", None, "x" * 201):
        with pytest.raises(ValueError, match="User id .* is not valid"):
            store.add_concept(bad, "bo", photos)  # type: ignore[arg-type]
    assert not (store.home / "users").exists()


# ---- facts


def test_facts_are_remembered_listed_and_forgotten_one_by_one(
    store: ConceptStore, tmp_path: Path
) -> None:
    store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:2], "bo"))
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS[:1], "kiwi"))
    texts = ["bo likes tuna", "bo's birthday is May 3", "bo is afraid of the vacuum"]
    facts = [store.remember("alice", "bo", f"  {text}\n") for text in texts]  # stripped
    kiwi_fact = store.remember("alice", "kiwi", "kiwi is a parrot")
    assert [f.text for f in facts] == texts
    assert len({f.id for f in facts}) == 3 and all(f.concept == "bo" for f in facts)
    listed = store.list_facts("alice", "bo")
    assert sorted(f.text for f in listed) == sorted(texts)
    assert {f.id: f.text for f in listed} == {f.id: f.text for f in facts}

    store.forget_fact("alice", "bo", facts[1].id)
    assert sorted(f.text for f in store.list_facts("alice", "bo")) == sorted([texts[0], texts[2]])
    with pytest.raises(UnknownConceptError, match=rf"Concept 'bo' has no fact '{facts[1].id}'"):
        store.forget_fact("alice", "bo", facts[1].id)  # already gone
    with pytest.raises(UnknownConceptError, match=rf"Concept 'bo' has no fact '{kiwi_fact.id}'"):
        store.forget_fact("alice", "bo", kiwi_fact.id)  # a fact of another concept
    store.forget_fact("alice", "bo", facts[0].id)
    store.forget_fact("alice", "bo", facts[2].id)
    assert store.list_facts("alice", "bo") == []
    assert [f.text for f in store.list_facts("alice", "kiwi")] == ["kiwi is a parrot"]  # untouched
    assert store.facts.count() == 1

    for empty in ("", "   \n", None):
        with pytest.raises(ValueError, match="The fact about 'bo' is empty"):
            store.remember("alice", "bo", empty)  # type: ignore[arg-type]
    assert store.facts.count() == 1
    with pytest.raises(UnknownConceptError, match="Unknown concept 'nemo'"):
        store.remember("alice", "nemo", "a fish")


def test_facts_remembered_in_the_same_second_list_oldest_first(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:1], "bo"))
    # Freeze the clock at one second, and let the random ids come out in descending order.
    monkeypatch.setattr(store_module, "_now", lambda: "2026-01-01T00:00:00+00:00")
    ids = iter(["f" * 32, "e" * 32, "d" * 32])
    monkeypatch.setattr(
        store_module, "uuid", SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=next(ids)))
    )
    for text in ("first", "second", "third"):
        store.remember("alice", "bo", text)
    assert [f.text for f in store.list_facts("alice", "bo")] == ["first", "second", "third"]


# ---- forget


def _forget_setup(store: ConceptStore, tmp_path: Path) -> dict[str, Any]:
    reds = _save(tmp_path / "in", REDS[:3], "red")
    store.add_concept("alice", "zanzibar", reds, description="QUOKKA-DESCRIPTION")
    store.remember("alice", "zanzibar", "QUOKKA-FACT one")
    store.remember("alice", "zanzibar", "QUOKKA-FACT two")
    artifact = store.artifact_dir("alice", "zanzibar")
    artifact.mkdir(parents=True)
    (artifact / "concept.safetensors").write_bytes(b"trained rows")
    store.set_status("alice", "zanzibar", "ready", artifact_path=artifact)
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS, "green"))
    store.remember("alice", "kiwi", "kiwi is a parrot")
    store.add_concept("bob", "zanzibar", reds)  # the same name and the very same photos
    store.remember("bob", "zanzibar", "bob's zanzibar fact")
    return {
        "reds": reds,
        "hashes": [_sha(p.read_bytes()) for p in reds],
        "folder": store.concept_dir("alice", "zanzibar"),
        "photo_ids": {
            _record_id("alice", "zanzibar", p.name) for p in store.photo_paths("alice", "zanzibar")
        },
        "fact_ids": {
            _record_id("alice", "zanzibar", "fact", f.id)
            for f in store.list_facts("alice", "zanzibar")
        },
    }


def _is_forgotten(metadata: dict[str, Any]) -> bool:
    return metadata.get("user_id") == "alice" and "zanzibar" in (
        metadata.get("name"),
        metadata.get("concept"),
    )


def test_forget_removes_that_concept_of_that_user_and_nothing_else(
    store: ConceptStore, tmp_path: Path
) -> None:
    setup = _forget_setup(store, tmp_path)
    files_before, records_before = _state(store)
    forgotten_files = {f for f in files_before if (store.home / f).is_relative_to(setup["folder"])}
    assert len(forgotten_files) == 5  # 3 photos, the artifact and the key of its sealed text

    store.forget("alice", "zanzibar")

    with pytest.raises(
        UnknownConceptError, match="Unknown concept 'zanzibar': your concepts are \\['kiwi'\\]"
    ):
        store.get_concept("alice", "zanzibar")
    assert [c.name for c in store.list_concepts("alice")] == ["kiwi"]

    # The data folder: nothing under or beside the concept's folder, no retired copy, nothing else changed.
    folder = setup["folder"]
    assert not folder.exists()
    leftovers = [
        p
        for p in store.home.rglob("*")
        if str(folder) in str(p) or ("zanzibar" in p.name and p.is_relative_to(folder.parent))
    ]
    assert leftovers == []
    assert list(folder.parent.iterdir()) == [folder.parent / "kiwi"]
    files_after, records_after = _state(store)
    assert files_after == {f: h for f, h in files_before.items() if f not in forgotten_files}

    # Every collection: no record, metadata, document or path of the concept left.
    for name, records in records_after.items():
        for record_id, (metadata_json, document, _) in records.items():
            metadata = json.loads(metadata_json)
            assert not _is_forgotten(metadata), (name, metadata)
            assert str(folder) not in metadata_json, (name, metadata)
            assert "QUOKKA" not in metadata_json and "QUOKKA" not in (document or ""), (
                name,
                document,
            )
            assert record_id not in setup["photo_ids"] | setup["fact_ids"] | {
                _record_id("alice", "zanzibar")
            }
    # ... and every other record exactly as it was, embeddings included.
    for name, records in records_before.items():
        kept = {i: r for i, r in records.items() if not _is_forgotten(json.loads(r[0]))}
        assert records_after[name] == kept, name
    assert len(records_before["photos"]) - len(records_after["photos"]) == 3
    assert len(records_before["facts"]) - len(records_after["facts"]) == 2

    # The same photos of bob's same-named concept are still his, and still recognised.
    bobs = store.photo_paths("bob", "zanzibar")
    assert sorted(p.name.removesuffix(".png") for p in bobs) == sorted(setup["hashes"])
    assert all(p.is_file() for p in bobs)
    assert [r.name for r in store.recognize("bob", setup["reds"][0])] == ["zanzibar"]
    assert [f.text for f in store.list_facts("bob", "zanzibar")] == ["bob's zanzibar fact"]
    assert store.recognize("alice", setup["reds"][0]) == []
    assert [r.name for r in store.recognize("alice", make_photo(GREENS[0]))] == ["kiwi"]
    assert [f.text for f in store.list_facts("alice", "kiwi")] == ["kiwi is a parrot"]

    with pytest.raises(UnknownConceptError, match="Unknown concept 'zanzibar'"):
        store.forget("alice", "zanzibar")  # twice: a clear error
    # The name is free again, and nothing of the old concept comes back with it.
    again = store.add_concept("alice", "zanzibar", setup["reds"][:1])
    assert again.description == "" and again.status == "taught" and again.photo_count == 1
    assert store.list_facts("alice", "zanzibar") == []


def test_forget_leaves_no_bytes_of_the_concept_in_the_data_folder(
    store: ConceptStore, tmp_path: Path
) -> None:
    setup = _forget_setup(store, tmp_path)
    store.forget("alice", "zanzibar")
    markers = [b"QUOKKA", str(setup["folder"]).encode()]
    traces = [
        (path.relative_to(store.home).as_posix(), marker)
        for path in store.home.rglob("*")
        if path.is_file()
        for marker in markers
        if marker in path.read_bytes()
    ]
    assert traces == []


# ---- bad input


def test_a_duplicate_name_is_refused_and_the_first_concept_kept(
    store: ConceptStore, tmp_path: Path
) -> None:
    reds = _save(tmp_path / "in", REDS[:2], "bo")
    first = store.add_concept("alice", "bo", reds, description="the first")
    store.remember("alice", "bo", "bo likes tuna")
    before = _state(store)
    with pytest.raises(
        ConceptExistsError, match="You already have a concept named 'bo'. Forget it first"
    ):
        store.add_concept(
            "alice", "bo", _save(tmp_path / "in", GREENS, "other"), description="the second"
        )
    assert _state(store) == before
    assert store.get_concept("alice", "bo") == first
    assert issubclass(ConceptExistsError, ValueError) and issubclass(ConceptExistsError, StoreError)


def test_unsafe_names_and_missing_photos_are_refused(store: ConceptStore, tmp_path: Path) -> None:
    photos = _save(tmp_path / "in", REDS[:1], "bo")
    for bad in ("../evil", "a/b", "my cat", "<bo>", "", ".hidden"):
        with pytest.raises(InvalidConceptNameError, match="Concept name"):
            store.add_concept("alice", bad, photos)
    with pytest.raises(ValueError, match="Concept 'bo' needs at least one photo; none were given"):
        store.add_concept("alice", "bo", [])
    assert not (store.home / "users").exists() and not (tmp_path / "evil").exists()
    assert store.list_concepts("alice") == []


def test_an_unreadable_photo_writes_nothing(store: ConceptStore, tmp_path: Path) -> None:
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS[:1], "kiwi"))
    before = _state(store)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    photos = [*_save(tmp_path / "in", REDS[:2], "bo"), broken]
    with pytest.raises(ImageInputError, match="broken.jpg"):
        store.add_concept("alice", "bo", photos)
    with pytest.raises(ImageInputError, match="missing.png"):
        store.add_concept("alice", "bo", [photos[0], tmp_path / "missing.png"])
    assert _state(store) == before
    assert not store.concept_dir("alice", "bo").exists()
    assert [c.name for c in store.list_concepts("alice")] == ["kiwi"]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_data_folder_gives_a_clear_error_and_loses_nothing(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    kept = store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS, "kiwi"))
    store.remember("alice", "kiwi", "kiwi is a parrot")
    files_before, records_before = _state(store)
    written: list[Path] = []
    real_write = Path.write_bytes

    def fail_after_one(self: Path, data: bytes) -> int:  # the first photo lands, the second cannot
        if written:
            raise OSError(error, os.strerror(error), str(self))
        written.append(self)
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_after_one)
    with pytest.raises(StoreWriteError) as raised:
        store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:3], "bo"))
    monkeypatch.undo()

    message = str(raised.value)
    assert f"Cannot write to the data folder {store.concept_dir('alice', 'bo').parent}" in message
    assert os.strerror(error) in message and "Nothing already stored was changed" in message
    assert isinstance(raised.value, OSError)
    assert written and not written[0].exists()  # the partial copy is gone
    assert list(store.concept_dir("alice", "bo").parent.iterdir()) == [
        store.concept_dir("alice", "kiwi")
    ]
    assert _state(store) == (files_before, records_before)
    assert store.get_concept("alice", "kiwi") == kept
    assert [f.text for f in store.list_facts("alice", "kiwi")] == ["kiwi is a parrot"]
    with pytest.raises(UnknownConceptError, match="Unknown concept 'bo'"):
        store.get_concept("alice", "bo")
    # Once there is room again, the same concept goes in.
    assert store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:3], "bo")).photo_count == 3


@pytest.mark.parametrize("which", ["photos", "concepts"])
def test_a_failing_chroma_write_undoes_the_whole_concept(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    store.add_concept("alice", "kiwi", _save(tmp_path / "in", GREENS, "kiwi"))
    before = _state(store)

    def full(**_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(
        getattr(store, which), "add", full
    )  # for concepts: the photos went in first
    with pytest.raises(
        StoreWriteError, match=f"Cannot write to the data folder {store.home / 'chroma'}"
    ):
        store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:3], "bo"))
    assert _state(store) == before
    assert not store.concept_dir("alice", "bo").exists()


def test_a_data_folder_that_cannot_be_created_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where the data folder should go")
    with pytest.raises(
        StoreWriteError,
        match=f"Cannot write to the data folder {tmp_path / 'afile' / 'home' / 'chroma'}",
    ):
        _store(tmp_path / "afile" / "home")


def test_a_users_folder_that_cannot_be_written_gives_a_clear_error(
    store: ConceptStore, tmp_path: Path
) -> None:
    # A real OS error, no monkeypatch: `users` is a file, so no concept folder can be made under it.
    (store.home / "users").write_text("in the way")
    with pytest.raises(StoreWriteError, match="Cannot write to the data folder .*Not a directory"):
        store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:1], "bo"))
    assert store.list_concepts("alice") == [] and store.photos.count() == 0


def test_forget_on_a_read_only_data_folder_changes_nothing(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:2], "bo"))
    store.remember("alice", "bo", "bo likes tuna")
    before = _state(store)

    def read_only(self: Path, target: Any) -> Path:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "rename", read_only)
    with pytest.raises(OSError) as raised:
        store.forget("alice", "bo")
    monkeypatch.undo()
    assert [c.name for c in store.list_concepts("alice")] == [
        "bo"
    ]  # today: gone, photos still on disk
    assert _state(store) == before
    assert [f.text for f in store.list_facts("alice", "bo")] == ["bo likes tuna"]
    assert isinstance(raised.value, StoreWriteError)
    assert "Cannot write to the data folder" in str(raised.value)


@pytest.mark.parametrize(
    "detail",
    [
        "Query error: Database error: error returned from database: (code: 13) database or disk is full",
        "error returned from database: (code: 8) attempt to write a readonly database",
    ],
)
def test_chromas_own_disk_errors_become_store_write_errors(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: str
) -> None:
    # These are the messages a real full tmpfs and a read-only bind mount give (checked as root).
    def failing(**_: Any) -> None:
        raise chromadb.errors.InternalError(detail)

    monkeypatch.setattr(store.photos, "add", failing)
    with pytest.raises(StoreWriteError, match="Cannot write to the data folder"):
        store.add_concept("alice", "bo", _save(tmp_path / "in", REDS[:1], "bo"))
    assert not store.concept_dir("alice", "bo").exists()


def test_a_failed_add_whose_cleanup_also_fails_leaves_no_folder(
    store: ConceptStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(**_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.photos, "add", full)
    monkeypatch.setattr(store.photos, "delete", full)
    photos = _save(tmp_path / "in", REDS[:2], "bo")
    with pytest.raises(StoreWriteError):
        store.add_concept("alice", "bo", photos)
    monkeypatch.undo()
    assert not store.concept_dir("alice", "bo").exists()
    assert store.add_concept("alice", "bo", photos).photo_count == 2


def test_each_stored_photo_keeps_its_own_embedding(store: ConceptStore, tmp_path: Path) -> None:
    red, green = make_photo(REDS[0]), make_photo(GREENS[0])
    store.add_concept("alice", "bo", [red, red, green])
    got = store.photos.get(where={"user_id": "alice"}, include=["metadatas", "embeddings"])
    for metadata, vector in zip(got["metadatas"], got["embeddings"], strict=True):
        photo = store.concept_dir("alice", "bo") / "photos" / metadata["file"]
        expected = _embed(store, [photo])[0].numpy()
        assert np.allclose(vector, expected, atol=1e-5), metadata["file"]
    assert store.recognize("alice", green)[0].score == pytest.approx(1.0, abs=1e-5)


def test_a_concurrent_duplicate_add_does_not_destroy_the_first_concept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    winner, loser = _store(home), _store(home)
    photos = _save(tmp_path / "in", REDS[:2], "bo")
    # The loser checked for the name just before the winner wrote it.
    monkeypatch.setattr(loser, "concepts", _Blinded(loser.concepts))
    first = winner.add_concept("alice", "bo", photos)
    winner.remember("alice", "bo", "bo likes tuna")
    first_photos = winner.photo_paths("alice", "bo")
    try:
        loser.add_concept("alice", "bo", _save(tmp_path / "in", GREENS, "other"))
    except StoreError as e:
        raised: StoreError | None = e
    else:
        raised = None
    # The first concept is exactly as it was: its record, its photos (on disk too), its facts.
    assert winner.get_concept("alice", "bo") == first
    assert winner.photo_paths("alice", "bo") == first_photos
    assert all(p.is_file() for p in first_photos)
    assert [f.text for f in winner.list_facts("alice", "bo")] == ["bo likes tuna"]
    # ... and the second writer was told, as for any duplicate.
    assert isinstance(raised, ConceptExistsError) and "'bo'" in str(raised)
