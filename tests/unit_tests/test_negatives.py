"""Hard-negative mining: brute-force agreement, near-duplicates, easy draws, caching, bad input.

A tiny open_clip config (32-px ViT, 32-d embeddings) with seeded random weights stands in for
ViT-B-32: similarities are meaningless as semantics but deterministic, which is all these need.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_photo
from yollava_agent import ImageInputError, ModelLoadError
from yollava_agent.training import negatives
from yollava_agent.training.negatives import (
    TINY_CLIP_NAME,
    ClipConfig,
    ClipEmbedder,
    NegativePool,
    NegativeSelection,
    mine_negatives,
)

TINY_CLIP = TINY_CLIP_NAME


@pytest.fixture
def embedder() -> ClipEmbedder:
    return ClipEmbedder(ClipConfig(model_name=TINY_CLIP, batch_size=8))


def photos(count: int, seed: int) -> list[Image.Image]:
    """Distinct photos: a random background colour with a random rectangle of another colour."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        image = Image.new("RGB", (48, 40), tuple(int(c) for c in rng.integers(0, 256, 3)))
        box = (
            int(rng.integers(0, 20)),
            int(rng.integers(0, 16)),
            int(rng.integers(26, 48)),
            int(rng.integers(22, 40)),
        )
        image.paste(tuple(int(c) for c in rng.integers(0, 256, 3)), box)
        result.append(image)
    return result


def write_folder(folder: Path, images: Sequence[Image.Image]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"photo_{index:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def brute_force_scores(
    embedder: ClipEmbedder, positives: Sequence[Image.Image], pool: NegativePool
) -> torch.Tensor:
    """Each pool photo's highest cosine similarity to a positive, one photo at a time."""
    pool_vectors = torch.cat([embedder.embed([pool.image(i)]) for i in range(len(pool))])
    positive_vectors = torch.cat([embedder.embed([p]) for p in positives])
    sims = torch.tensor(
        [
            [
                float(np.dot(a.double().numpy(), b.double().numpy()))
                / (float(a.double().norm()) * float(b.double().norm()))
                for b in positive_vectors
            ]
            for a in pool_vectors
        ]
    )
    return sims.max(dim=1).values


def test_embedder_returns_unit_rows_batched(embedder: ClipEmbedder) -> None:
    images = photos(11, seed=1)
    vectors = embedder.embed(images)
    assert vectors.shape == (11, 32)
    assert vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=1), torch.ones(11), atol=1e-5)
    calls = []
    model = embedder._model
    original = model.encode_image
    model.encode_image = lambda batch: calls.append(len(batch)) or original(batch)
    try:
        again = embedder.embed(images)
    finally:
        model.encode_image = original
    assert calls == [8, 3]
    assert torch.allclose(again, vectors, atol=1e-5)
    # Seeded random weights: a second embedder (another process, in real use) agrees.
    other = ClipEmbedder(ClipConfig(model_name=TINY_CLIP))
    assert torch.allclose(other.embed(images), vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, 32)


def test_cache_key_names_model_and_weights(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    keys = {
        ClipEmbedder(ClipConfig(model_name=TINY_CLIP)).cache_key,
        ClipEmbedder(ClipConfig(model_name="ViT-B-32")).cache_key,
        ClipEmbedder(ClipConfig(model_name=TINY_CLIP, pretrained=str(weights))).cache_key,
        ClipEmbedder(ClipConfig(model_name=TINY_CLIP, pretrained="openai")).cache_key,
    }
    assert len(keys) == 4
    assert all(TINY_CLIP in key or "ViT-B-32" in key for key in keys)


@pytest.mark.parametrize(
    ("name", "pretrained"), [("no-such-clip", None), (TINY_CLIP, "no-such-tag")]
)
def test_unbuildable_model_raises_model_load_error(name: str, pretrained: str | None) -> None:
    embedder = ClipEmbedder(ClipConfig(model_name=name, pretrained=pretrained))
    with pytest.raises(ModelLoadError, match=f"{name}.*{pretrained}"):
        embedder.embed([make_photo()])


def test_hard_negatives_match_brute_force(embedder: ClipEmbedder, tmp_path: Path) -> None:
    positives = photos(3, seed=100)
    write_folder(tmp_path / "pool", photos(40, seed=7))
    pool = NegativePool([tmp_path / "pool"], embedder, cache_dir=tmp_path / "cache")
    threshold = 0.99
    selection = mine_negatives(
        positives, pool, num_hard=10, num_easy=5, near_duplicate_threshold=threshold
    )

    scores = brute_force_scores(embedder, positives, pool)
    usable = [i for i in range(len(pool)) if scores[i] < threshold]
    expected = sorted(usable, key=lambda i: -float(scores[i]))[:10]
    assert isinstance(selection, NegativeSelection)
    assert selection.hard == expected
    assert len(set(selection.hard)) == 10
    assert selection.warnings == []
    # The pool's own (batched, cached) embeddings agree with one-at-a-time ones.
    fresh = torch.cat([embedder.embed([pool.image(i)]) for i in range(len(pool))])
    assert torch.allclose(pool.embeddings(), fresh, atol=1e-5)


def test_near_duplicates_of_positives_are_excluded(
    embedder: ClipEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    positives = photos(2, seed=200)
    others = photos(20, seed=201)
    folder = tmp_path / "pool"
    write_folder(folder, others)
    positives[0].save(folder / "copy_of_positive_0.png")  # the same photo, lossless
    positives[1].save(folder / "copy_of_positive_1.jpg", quality=95)  # a re-encoded copy
    pool = NegativePool([folder, positives[0]], embedder, cache_dir=tmp_path / "cache")
    labels = [pool.label(i) for i in range(len(pool))]
    copies = {
        i for i, label in enumerate(labels) if "copy_of_positive" in label or label == "<image 0>"
    }
    assert len(copies) == 3

    scores = brute_force_scores(embedder, positives, pool)
    # Without the exclusion the copies would be the hardest negatives of all.
    assert set(torch.topk(scores, 3).indices.tolist()) == copies

    with caplog.at_level(logging.INFO, logger=negatives.__name__):
        selection = mine_negatives(
            positives, pool, num_hard=len(pool), num_easy=0, near_duplicate_threshold=0.999
        )
    chosen = set(selection.hard) | set(selection.easy)
    assert chosen.isdisjoint(copies)
    assert chosen == {i for i in range(len(pool)) if scores[i] < 0.999}
    assert "near-duplicates" in caplog.text and "copy_of_positive_0.png" in caplog.text

    # threshold 1.0 still drops exact copies (up to float rounding), and nothing else.
    exact = mine_negatives(
        positives, pool, num_hard=len(pool), num_easy=0, near_duplicate_threshold=1.0
    )
    dropped = set(range(len(pool))) - set(exact.hard)
    assert labels.index(str(folder / "copy_of_positive_0.png")) in dropped
    assert labels.index("<image 0>") in dropped
    assert all(scores[i] > 0.9999 for i in dropped)


def test_easy_negatives_are_disjoint_seeded_and_vary(
    embedder: ClipEmbedder, tmp_path: Path
) -> None:
    positives = photos(2, seed=300)
    write_folder(tmp_path / "pool", photos(60, seed=301))
    pool = NegativePool([tmp_path / "pool"], embedder, cache_dir=tmp_path / "cache")

    first = mine_negatives(positives, pool, num_hard=8, num_easy=12, seed=0)
    again = mine_negatives(positives, pool, num_hard=8, num_easy=12, seed=0)
    other = mine_negatives(positives, pool, num_hard=8, num_easy=12, seed=1)

    assert len(first.easy) == 12 and len(set(first.easy)) == 12
    assert set(first.easy).isdisjoint(first.hard)
    assert first.easy == again.easy
    assert first.hard == other.hard  # the seed only drives the random draw
    assert first.easy != other.easy
    scores = brute_force_scores(embedder, positives, pool)
    assert all(scores[i] < 0.95 for i in first.easy + other.easy)
    assert all(0 <= i < len(pool) for i in first.easy + other.easy)


def test_small_pool_gives_what_exists_and_warns(
    embedder: ClipEmbedder, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    pool = NegativePool(photos(4, seed=400), embedder, cache_dir=tmp_path / "cache")
    assert [pool.label(i) for i in range(4)] == [f"<image {i}>" for i in range(4)]
    with caplog.at_level(logging.WARNING, logger=negatives.__name__):
        selection = mine_negatives(photos(1, seed=401), pool, num_hard=3, num_easy=5)
    assert len(selection.hard) == 3
    assert len(selection.easy) == 1
    assert sorted(selection.hard + selection.easy) == [0, 1, 2, 3]
    assert len(selection.warnings) == 1
    warning = selection.warnings[0]
    for fragment in ("4 photos", "3 hard", "5 easy", "0.914", "0.754", "recognition"):
        assert fragment in warning
    assert warning in caplog.text

    plenty = mine_negatives(photos(1, seed=401), pool, num_hard=2, num_easy=2)
    assert plenty.warnings == []


def test_second_pool_over_the_same_folder_uses_the_cache(
    embedder: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, cache = tmp_path / "pool", tmp_path / "cache"
    paths = write_folder(folder, photos(12, seed=500))
    first = NegativePool([folder], embedder, cache_dir=cache)
    vectors = first.embeddings()
    assert first.embeddings() is vectors  # once per pool object
    cached = sorted(cache.rglob("*.npy"))
    assert len(cached) == 12
    assert not list(cache.rglob("*.tmp"))

    embedded: list[int] = []
    original = ClipEmbedder.embed

    def counting(self: ClipEmbedder, images: Sequence[Image.Image]) -> torch.Tensor:
        embedded.append(len(images))
        return original(self, images)

    monkeypatch.setattr(ClipEmbedder, "embed", counting)
    second = NegativePool([folder], ClipEmbedder(ClipConfig(model_name=TINY_CLIP)), cache_dir=cache)
    assert torch.equal(second.embeddings(), vectors)
    assert embedded == []
    assert second.embedder._model is None  # never even built

    # The key is the file's content: a changed photo is embedded again, and only it.
    make_photo((10, 200, 90)).save(paths[3])
    third = NegativePool([folder], ClipEmbedder(ClipConfig(model_name=TINY_CLIP)), cache_dir=cache)
    third_vectors = third.embeddings()
    assert embedded == [1]
    assert not torch.allclose(third_vectors[3], vectors[3])
    assert torch.equal(third_vectors[:3], vectors[:3])

    # Another model never reads these entries.
    other_model = ClipEmbedder(ClipConfig(model_name=TINY_CLIP, pretrained=str(paths[0])))
    assert other_model.cache_key != embedder.cache_key
    assert NegativePool([folder], other_model, cache_dir=cache)._read_cache(
        third._entries[0].digest or ""
    ) is None


def test_cache_write_failure_is_logged_and_harmless(
    embedder: ClipEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder, cache = tmp_path / "pool", tmp_path / "cache"
    write_folder(folder, photos(3, seed=600))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(negatives.os, "replace", failing_replace)
    with caplog.at_level(logging.WARNING, logger=negatives.__name__):
        vectors = NegativePool([folder], embedder, cache_dir=cache).embeddings()
    assert vectors.shape == (3, 32)
    assert "disk full" in caplog.text
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # no partial or temp files


def test_corrupt_cache_entry_is_recomputed(embedder: ClipEmbedder, tmp_path: Path) -> None:
    folder, cache = tmp_path / "pool", tmp_path / "cache"
    write_folder(folder, photos(3, seed=650))
    vectors = NegativePool([folder], embedder, cache_dir=cache).embeddings()
    entry = sorted(cache.rglob("*.npy"))[0]
    entry.write_bytes(b"not numpy")
    again = NegativePool([folder], embedder, cache_dir=cache).embeddings()
    assert torch.allclose(again, vectors, atol=1e-6)


def test_unreadable_file_in_folder_is_skipped_with_a_warning(
    embedder: ClipEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "pool"
    write_folder(folder, photos(3, seed=700))
    broken = folder / "nested" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not a photo, not even looked at")
    with caplog.at_level(logging.WARNING, logger=negatives.__name__):
        pool = NegativePool([folder], embedder, cache_dir=tmp_path / "cache")
    assert len(pool) == 3
    assert str(broken) in caplog.text
    assert "notes.txt" not in caplog.text
    assert pool.skipped == [str(broken)]
    assert all(pool.label(i).endswith(".png") for i in range(3))
    assert pool.embeddings().shape == (3, 32)


def test_unreadable_file_named_explicitly_raises(embedder: ClipEmbedder, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageInputError, match="broken.png"):
        NegativePool([broken], embedder, cache_dir=tmp_path / "cache")
    with pytest.raises(ImageInputError, match="missing.jpg"):
        NegativePool([tmp_path / "missing.jpg"], embedder, cache_dir=tmp_path / "cache")


def test_folders_files_and_images_keep_order_and_dedupe(
    embedder: ClipEmbedder, tmp_path: Path
) -> None:
    paths = write_folder(tmp_path / "pool", photos(3, seed=800))
    pool = NegativePool(
        [paths[2], tmp_path / "pool", make_photo()], embedder, cache_dir=tmp_path / "cache"
    )
    assert [pool.label(i) for i in range(len(pool))] == [
        str(paths[2]),
        str(paths[0]),
        str(paths[1]),
        "<image 0>",
    ]
    assert pool.image(3).mode == "RGB" and pool.image(3).size == (48, 40)
    with pytest.raises(IndexError, match="4"):
        pool.image(4)


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"batch_size": 0}, "0"),
        ({"batch_size": -3}, "-3"),
        ({"batch_size": 2.5}, "2.5"),
        ({"model_name": ""}, "''"),
        ({"pretrained": ""}, "''"),
        ({"device": "toaster"}, "toaster"),
    ],
)
def test_bad_clip_config_names_the_value(kwargs: dict[str, object], shown: str) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))}.*{shown}"):
        ClipConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"num_hard": -1}, "num_hard.*-1"),
        ({"num_easy": -2}, "num_easy.*-2"),
        ({"num_hard": 1.5}, "num_hard.*1.5"),
        ({"near_duplicate_threshold": 0.0}, "threshold.*0.0"),
        ({"near_duplicate_threshold": 1.5}, "threshold.*1.5"),
        ({"near_duplicate_threshold": math.nan}, "threshold.*nan"),
    ],
)
def test_bad_mining_arguments_name_the_value(
    embedder: ClipEmbedder, tmp_path: Path, kwargs: dict[str, object], shown: str
) -> None:
    pool = NegativePool([make_photo()], embedder, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=shown):
        mine_negatives([make_photo((0, 0, 255))], pool, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        mine_negatives([], pool)
