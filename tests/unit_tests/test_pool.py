"""Downloading the default negative pool: complete folders only, clear errors offline."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_photo
from yollava_agent.training.pool import download_pool


def _zip_of_photos(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for i in range(count):
            photo = path.parent / f"p{i}.png"
            make_photo((10 * i, 100, 200)).save(photo)
            bundle.write(photo, f"val2017/p{i}.png")
    return path


def test_download_unpacks_into_the_pool_folder(tmp_path: Path) -> None:
    archive = _zip_of_photos(tmp_path / "val2017.zip", 3)
    progress: list[tuple[int, int | None]] = []
    folder = download_pool(archive.as_uri(), pool_dir=tmp_path / "pool", on_progress=lambda d, t: progress.append((d, t)))
    assert folder == tmp_path / "pool" / "val2017"
    assert sorted(p.name for p in folder.rglob("*.png")) == ["p0.png", "p1.png", "p2.png"]
    assert progress[-1][0] == archive.stat().st_size
    assert [p.name for p in (tmp_path / "pool").iterdir()] == ["val2017"]  # no temporaries left


def test_a_failed_download_leaves_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"Could not download the negative pool from .*file:///path/to/missing\.zip"):
        download_pool((tmp_path / "missing.zip").as_uri(), pool_dir=tmp_path / "pool")
    assert list((tmp_path / "pool").iterdir()) == []


def test_a_download_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "photos.zip"
    fake.write_text("<html>Service unavailable</html>")
    with pytest.raises(OSError, match=r"is not a zip file of photos"):
        download_pool(fake.as_uri(), pool_dir=tmp_path / "pool")
    assert list((tmp_path / "pool").iterdir()) == []
