"""Teaching end to end: photos in, an atomic concept folder out, and bad input refused cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import HANG_SECONDS, make_photo
from tests.unit_tests.test_training import FAST
from yollava_agent import Concept, ImageInputError, InvalidConceptNameError
from yollava_agent.training.teach import teach

REPO = Path(__file__).resolve().parents[2]


def _photo_files(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"bo{i}.png"
        make_photo((220, 40 + 20 * i, 30)).save(path)
        paths.append(path)
    return paths


def test_teach_writes_a_versioned_concept_folder(runtime, tmp_path: Path) -> None:
    photos = _photo_files(tmp_path / "photos")
    out = tmp_path / "concepts"
    folder = teach(runtime, "bo", photos, out, config=FAST, description="my mug")
    first = Concept.from_pretrained(folder, base=runtime.base)
    assert folder == out / "bo"
    assert (first.version, first.description) == (1, "my mug")
    assert first.training["epochs"] == FAST.epochs

    teach(runtime, "bo", photos[:2], out, config=FAST)
    second = Concept.from_pretrained(folder)
    assert second.version == 2
    assert not torch.equal(first.input_embeddings, second.input_embeddings)
    assert sorted(p.name for p in out.iterdir()) == ["bo"]


def test_every_photo_mode_can_be_taught(runtime, tmp_path: Path) -> None:
    photo = make_photo()
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {
        "gray.png": (photo.convert("L"), {}),
        "rgba.png": (photo.convert("RGBA"), {}),
        "cmyk.jpg": (photo.convert("CMYK"), {}),
        "deep.png": (Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257), {}),
        "rotated.jpg": (photo, {"exif": exif}),
    }
    paths = []
    for name, (image, options) in files.items():
        image.save(tmp_path / name, **options)
        paths.append(tmp_path / name)
    folder = teach(runtime, "bo", paths, tmp_path / "concepts", config=FAST)
    assert Concept.from_pretrained(folder).training["samples"]["positive"] == 5 * FAST.turns_per_positive


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an image at all", r"broken\.jpg' is not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, r"broken\.jpg' is"),
    ],
)
def test_a_bad_photo_is_named_and_nothing_is_written(runtime, tmp_path: Path, content: bytes, message: str) -> None:
    photos = _photo_files(tmp_path / "photos", 2)
    broken = tmp_path / "photos" / "broken.jpg"
    broken.write_bytes(content)
    out = tmp_path / "concepts"
    with pytest.raises(ImageInputError, match=message):
        teach(runtime, "bo", [*photos, broken], out, config=FAST)
    assert not (out / "bo").exists()


def test_a_truncated_photo_is_named(runtime, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.jpg"
    full = tmp_path / "full.jpg"
    make_photo(size=(300, 300)).save(full)
    truncated.write_bytes(full.read_bytes()[:400])
    with pytest.raises(ImageInputError, match=r"cut\.jpg' is unreadable or truncated"):
        teach(runtime, "bo", [truncated], tmp_path / "concepts", config=FAST)


def test_no_photos_and_bad_names_are_refused(runtime, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Teaching 'bo' needs photos of it"):
        teach(runtime, "bo", [], tmp_path, config=FAST)
    with pytest.raises(InvalidConceptNameError, match=r"'\.\./bo' is not a safe identifier"):
        teach(runtime, "../bo", _photo_files(tmp_path / "p", 1), tmp_path, config=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


_KILLED_TEACHER = """
import sys, time
from pathlib import Path
from tests.conftest import make_photo
from tests.unit_tests.test_training import FAST
from yollava_agent import shared_runtime
from yollava_agent.training.teach import teach

photos, out, ready = [Path(p) for p in sys.argv[1].split(",")], Path(sys.argv[2]), Path(sys.argv[3])

def hang_mid_epoch(event):
    if event.epoch == 2 and event.step == 2:
        ready.touch()
        time.sleep(300)

teach(shared_runtime("tiny", "cpu", "fp32"), "bo", photos, out, config=FAST, on_event=hang_mid_epoch)
"""


def _kill_mid_epoch(photos: list[Path], out: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_TEACHER, ",".join(map(str, photos)), str(out), str(ready)],
        cwd=REPO,
    )
    deadline = time.monotonic() + 240
    while not ready.exists():
        assert process.poll() is None, "the teaching process ended before it was killed"
        assert time.monotonic() < deadline, "the teaching process never reached epoch 2"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=HANG_SECONDS) == -signal.SIGKILL


def test_a_killed_run_leaves_no_concept_and_a_retry_succeeds(runtime, tmp_path: Path) -> None:
    photos = _photo_files(tmp_path / "photos")
    out = tmp_path / "concepts"
    _kill_mid_epoch(photos, out, tmp_path)
    assert not out.exists() or list(out.iterdir()) == []

    folder = teach(runtime, "bo", photos, out, config=FAST)
    assert Concept.from_pretrained(folder).version == 1


def test_a_killed_retrain_keeps_the_previous_version(runtime, tmp_path: Path) -> None:
    photos = _photo_files(tmp_path / "photos")
    out = tmp_path / "concepts"
    folder = teach(runtime, "bo", photos, out, config=FAST)
    before = Concept.from_pretrained(folder)

    _kill_mid_epoch(photos, out, tmp_path)
    kept = Concept.from_pretrained(folder)
    assert (kept.version, kept.created) == (1, before.created)
    assert torch.equal(kept.input_embeddings, before.input_embeddings)
    assert sorted(p.name for p in out.iterdir()) == ["bo"]
