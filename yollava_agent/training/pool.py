"""The default negative pool: a public photo set downloaded once into the data folder.

Yo'LLaVA mined hard negatives from LAION; we default to COCO val2017 (5,000 everyday photos,
about 800 MB), which is large and varied enough to hold look-alikes of most personal subjects.
`download_pool` fetches a zip of photos (any URL urllib opens, `file://` included, so a copy
made elsewhere works offline), unpacks it into a temporary folder and renames it into
`$YOLLAVA_HOME/negative-pool/<name>` when complete. `yollava teach` uses every folder below
`negative-pool/`. Not done: LAION itself (billions of URLs, not a download).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from yollava_agent.paths import data_home

logger = logging.getLogger(__name__)

COCO_VAL2017_URL = "http://images.cocodataset.org/zips/val2017.zip"
_CHUNK = 1 << 20


def default_pool_dir() -> Path:
    """Where downloaded pools live; `yollava teach` mines every folder below it."""
    return data_home() / "negative-pool"


def download_pool(
    url: str = COCO_VAL2017_URL,
    name: str | None = None,
    pool_dir: Path | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download a zip of photos and unpack it as pool folder `name`; return that folder.

    `on_progress(bytes_done, bytes_total_or_None)` is called as the download goes. An existing
    folder of the same name is kept as it is (delete it to download again).
    """
    name = name or Path(url.rstrip("/")).stem
    target = (pool_dir or default_pool_dir()) / name
    if target.is_dir():
        logger.info("Pool %s is already downloaded", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as scratch:
        archive = Path(scratch) / "pool.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as out:
                size = response.headers.get("Content-Length")
                total = int(size) if size else None
                done = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
        except OSError as e:
            msg = (
                f"Could not download the negative pool from {url}: {e}. Download the zip "
                f"elsewhere and pass it as file:///path/to/{Path(url).name}, or put photos in "
                f"{target.parent}/ yourself."
            )
            raise OSError(msg) from e
        unpacked = Path(scratch) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(unpacked)
        except zipfile.BadZipFile as e:
            msg = f"The download from {url} is not a zip file of photos: {e}."
            raise OSError(msg) from e
        shutil.move(str(unpacked), str(target))
    logger.info("Downloaded the negative pool %s into %s", url, target)
    return target
