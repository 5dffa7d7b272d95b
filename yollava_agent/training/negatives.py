"""Hard and easy negatives for a concept, mined from a pool of photos with CLIP image embeddings.

Yo'LLaVA trains a concept on its positive photos plus negatives: "hard" ones, the pool photos
that look most like the subject (nearest in CLIP image-embedding space), which teach it what the
subject is *not*, and "easy" random others. The paper reports weighted recognition accuracy 0.914
with hard negatives against 0.754 without, so a short pool is logged loudly.

Scoring: every pool photo gets its highest cosine similarity to any positive. Photos at or above
`near_duplicate_threshold` are dropped entirely (they are probably the subject itself, and training
"this is not <bo>" on them would poison the concept). Hard negatives are the top scores, nearest
first; easy negatives are drawn uniformly, with a seeded generator, from what is left.

Pool embeddings are computed once per `NegativePool` and, for files, cached on disk keyed by the
sha256 of the file's bytes plus the embedder's identity (model name and weights), one atomic
`.npy` file per photo, so re-mining over the same folder embeds nothing. A cache entry that cannot
be read is recomputed; one that cannot be written only costs time (logged), never the result.

Not done here: downloading a default public negative dataset (the paper used LAION images). The
product runs offline and downloads nothing on its own; the pool is whatever the caller passes.
Nor are text prompts or captions touched: this is image-to-image retrieval only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from yollava_agent.errors import ImageInputError, ModelLoadError
from yollava_agent.images import load_image
from yollava_agent.paths import data_home

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
"""File suffixes (lower-cased) picked up when a folder is scanned for pool photos."""

RECOGNITION_WITH_HARD_NEGATIVES = 0.914
RECOGNITION_WITHOUT_HARD_NEGATIVES = 0.754
"""Yo'LLaVA paper, weighted recognition accuracy with and without hard negatives."""

RANDOM_INIT_SEED = 0
"""Seed of the random weights built when `ClipConfig.pretrained` is None, so that they (and so
the cached embeddings) are the same in every process."""

_SIMILARITY_TOLERANCE = 1e-6
# An identical photo scores 1.0 only up to float32 rounding (0.99999994...); the tolerance lets
# near_duplicate_threshold=1.0 still mean "exact copies only".


TINY_CLIP_NAME = "tiny"
"""`ClipConfig(model_name="tiny")`: a 50k-parameter CLIP (32-px ViT, 32-d embeddings) for offline
tests and smoke runs, registered with open_clip on first use, like the tiny LLaVA."""

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
_TINY_CLIP_REGISTERED_NAME = "yollava-tiny-clip"


def _register_tiny_clip(open_clip: Any) -> str:
    folder = Path(tempfile.mkdtemp(prefix="yollava-clip-config-"))
    (folder / f"{_TINY_CLIP_REGISTERED_NAME}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder)
    return _TINY_CLIP_REGISTERED_NAME


def default_cache_dir() -> Path:
    """Where pool embeddings are cached when no `cache_dir` is given: `<data home>/cache/clip`."""
    return data_home() / "cache" / "clip"


@dataclass
class ClipConfig:
    """Which open_clip model embeds the photos, where it runs, and how many photos per forward."""

    model_name: str = "ViT-B-32"
    """An open_clip model name, a config registered with `open_clip.add_model_config`, or
    'tiny' for the built-in offline test CLIP."""
    pretrained: str | None = None
    """An open_clip pretrained tag (needs the hub) or a local `.pt`/`.safetensors` path; None
    builds seeded random weights (tests, smoke runs: similarities are then not meaningful)."""
    device: str = "cpu"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            msg = f"ClipConfig.model_name must be a non-empty string, got {self.model_name!r}."
            raise ValueError(msg)
        if isinstance(self.pretrained, os.PathLike):
            self.pretrained = os.fspath(self.pretrained)
        if self.pretrained is not None and (
            not isinstance(self.pretrained, str) or not self.pretrained.strip()
        ):
            msg = (
                f"ClipConfig.pretrained must be None, an open_clip tag or a weights path, "
                f"got {self.pretrained!r}."
            )
            raise ValueError(msg)
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as e:
            msg = (
                f"ClipConfig.device {self.device!r} is not a torch device "
                "('cpu', 'cuda', 'cuda:1')."
            )
            raise ValueError(msg) from e
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            msg = f"ClipConfig.batch_size must be an integer, got {self.batch_size!r}."
            raise ValueError(msg)
        if self.batch_size <= 0:
            msg = f"ClipConfig.batch_size must be positive, got {self.batch_size}."
            raise ValueError(msg)


class ClipEmbedder:
    """CLIP image embeddings: L2-normalised float32 rows, one per photo, in batches.

    The open_clip model is built on first use, in eval mode; nothing here computes gradients.
    """

    def __init__(self, config: ClipConfig | None = None) -> None:
        self.config = config if config is not None else ClipConfig()
        self._model: Any = None
        self._preprocess: Any = None

    @property
    def cache_key(self) -> str:
        """Identifies the embedding function: model name plus weights (tag, file or random seed).

        A weights file is identified by its resolved path, size and modification time, so
        replacing the file invalidates the cached embeddings without hashing gigabytes.
        """
        name = self.config.model_name
        pretrained = self.config.pretrained
        if pretrained is None:
            try:
                version = metadata.version("open_clip_torch")
            except metadata.PackageNotFoundError:
                version = "unknown"
            return f"open_clip:{name}:random-seed{RANDOM_INIT_SEED}:open_clip-{version}"
        path = Path(pretrained).expanduser()
        if path.is_file():
            stat = path.stat()
            return f"open_clip:{name}:file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        return f"open_clip:{name}:{pretrained}"

    def _load(self) -> None:
        if self._model is not None:
            return
        name, pretrained = self.config.model_name, self.config.pretrained
        try:
            import open_clip

            if name == TINY_CLIP_NAME:
                name = _register_tiny_clip(open_clip)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=pretrained, device=self.config.device
                )
        except Exception as e:
            detail = str(e)
            if len(detail) > 300:
                detail = detail[:300] + "..."
            msg = (
                f"Could not build the CLIP model {name!r} with pretrained={pretrained!r}: "
                f"{detail}. Named tags need the model hub; offline, pass a local .pt or "
                ".safetensors path, or register a config with open_clip.add_model_config."
            )
            raise ModelLoadError(msg) from e
        model.eval()
        model.requires_grad_(False)
        self._model, self._preprocess = model, preprocess
        logger.info(
            "Built CLIP model %r (pretrained=%r) on %s", name, pretrained, self.config.device
        )

    @property
    def dim(self) -> int:
        """Embedding size (builds the model if needed)."""
        self._load()
        return int(self._model.visual.output_dim)

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Embed photos as an (N, D) float32 CPU tensor of unit-length rows."""
        for position, image in enumerate(images):
            if not isinstance(image, Image.Image):
                msg = (
                    f"ClipEmbedder.embed takes PIL images; item {position} is "
                    f"{type(image).__name__}."
                )
                raise TypeError(msg)
        self._load()
        if len(images) == 0:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        rows = []
        size = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(images), size):
                batch = torch.stack(
                    [self._preprocess(load_image(image)) for image in images[start : start + size]]
                ).to(self.config.device)
                features = self._model.encode_image(batch).float()
                rows.append(torch.nn.functional.normalize(features, dim=-1).cpu())
        return torch.cat(rows)


@dataclass
class _Entry:
    label: str
    path: Path | None = None
    digest: str | None = None  # sha256 of the file's bytes when the pool was built
    image: Image.Image | None = None


def _read_file(path: Path) -> tuple[str, Image.Image]:
    """The sha256 of a file's bytes and its decoded RGB photo, from one read of the file."""
    try:
        data = path.read_bytes()
    except OSError as e:
        msg = f"Image file {str(path)!r} cannot be read ({e})."
        raise ImageInputError(msg) from e
    try:
        image = load_image(data)
    except ImageInputError as e:
        msg = f"Image file {str(path)!r} cannot be used: {e}"
        raise ImageInputError(msg) from e
    return hashlib.sha256(data).hexdigest(), image


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        msg = f"Image file {str(path)!r} cannot be read ({e})."
        raise ImageInputError(msg) from e
    return digest.hexdigest()


class NegativePool:
    """Photos to mine negatives from, with embeddings computed once and cached on disk.

    `sources` are image files, folders (scanned recursively for `IMAGE_SUFFIXES`, sorted for a
    stable order) and PIL images, in the order given; a file reached twice is kept once. Files are
    checked when the pool is built: an unreadable file inside a folder is skipped with a logged
    warning, an unreadable file named explicitly raises `ImageInputError`. `cache_dir` defaults
    to `default_cache_dir()`.
    """

    def __init__(
        self,
        sources: Iterable[str | Path | Image.Image],
        embedder: ClipEmbedder,
        cache_dir: Path | None = None,
    ) -> None:
        if isinstance(sources, (str, Path, Image.Image)):
            sources = [sources]
        self.embedder = embedder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        key = hashlib.sha256(embedder.cache_key.encode()).hexdigest()[:16]
        self._cache_folder = self.cache_dir / key  # one folder per embedding function
        self._entries: list[_Entry] = []
        self._embeddings: torch.Tensor | None = None
        self.skipped: list[str] = []  # files found in folders but left out as unreadable
        seen: set[Path] = set()
        images = 0
        for source in sources:
            if isinstance(source, Image.Image):
                self._entries.append(_Entry(f"<image {images}>", image=load_image(source)))
                images += 1
            elif isinstance(source, (str, os.PathLike)):
                path = Path(source).expanduser()
                if path.is_dir():
                    for file in self._scan(path):
                        self._add_file(file, seen, explicit=False)
                else:
                    self._add_file(path, seen, explicit=True)
            else:
                msg = (
                    f"NegativePool sources must be paths, folders or PIL images; "
                    f"got {type(source).__name__} {source!r}."
                )
                raise TypeError(msg)

    @staticmethod
    def _scan(folder: Path) -> list[Path]:
        found = [
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ]
        return sorted(found)

    def _cache_file(self, digest: str) -> Path:
        return self._cache_folder / digest[:2] / f"{digest}.npy"

    def _add_file(self, path: Path, seen: set[Path], *, explicit: bool) -> None:
        resolved = path.resolve()
        if resolved in seen:
            logger.debug("Pool file %s is listed twice; kept once", path)
            return
        try:
            if not path.is_file():
                msg = f"Image file {str(path)!r} does not exist or is not a file."
                raise ImageInputError(msg)
            digest = _file_digest(path)
            if not self._cache_file(digest).is_file():
                # Not cached: decode now, so an unreadable file fails (or is skipped) here and
                # the pool's indices never shift later. Cached files were readable already.
                digest, _ = _read_file(path)
        except ImageInputError as e:
            if explicit:
                raise
            logger.warning("Skipping unreadable pool image %s: %s", path, e)
            self.skipped.append(str(path))
            return
        seen.add(resolved)
        self._entries.append(_Entry(str(path), path=path, digest=digest))

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, index: int) -> _Entry:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            msg = f"Pool index {index!r} is out of range for a pool of {len(self)} photos."
            raise IndexError(msg)
        return self._entries[index]

    def image(self, index: int) -> Image.Image:
        """The pool photo at `index`, as RGB."""
        entry = self._entry(index)
        if entry.image is not None:
            return entry.image.copy()
        assert entry.path is not None
        return load_image(entry.path)

    def label(self, index: int) -> str:
        """The file path of the photo at `index`, or `<image N>` for a PIL image source."""
        return self._entry(index).label

    def embeddings(self) -> torch.Tensor:
        """(len, D) unit-length CLIP embeddings of the pool, computed once per pool object."""
        if self._embeddings is not None:
            return self._embeddings
        rows: list[torch.Tensor | None] = [None] * len(self)
        for index, entry in enumerate(self._entries):
            if entry.digest is not None:
                rows[index] = self._read_cache(entry.digest)
        missing = [index for index, row in enumerate(rows) if row is None]
        if missing:
            logger.info(
                "Embedding %d of %d pool photos (%d cached)",
                len(missing),
                len(self),
                len(self) - len(missing),
            )
        for start in range(0, len(missing), self.embedder.config.batch_size):
            chunk = missing[start : start + self.embedder.config.batch_size]
            images, digests = [], []
            for index in chunk:
                entry = self._entries[index]
                if entry.image is not None:
                    images.append(entry.image)
                    digests.append(None)
                else:
                    assert entry.path is not None
                    digest, image = _read_file(entry.path)
                    images.append(image)
                    digests.append(digest)
            vectors = self.embedder.embed(images)
            for index, digest, vector in zip(chunk, digests, vectors, strict=True):
                rows[index] = vector
                if digest is not None:
                    self._write_cache(digest, vector)
        if not rows:
            self._embeddings = torch.zeros((0, self.embedder.dim), dtype=torch.float32)
        else:
            self._embeddings = torch.stack([row for row in rows if row is not None])
        return self._embeddings

    def _read_cache(self, digest: str) -> torch.Tensor | None:
        path = self._cache_file(digest)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            logger.warning("Ignoring unreadable embedding cache file %s (%s)", path, e)
            return None
        norm = float(np.linalg.norm(array)) if array.ndim == 1 and array.size else math.nan
        if array.dtype != np.float32 or not math.isfinite(norm) or abs(norm - 1.0) > 1e-3:
            logger.warning("Ignoring malformed embedding cache file %s", path)
            return None
        return torch.from_numpy(array.copy())

    def _write_cache(self, digest: str, vector: torch.Tensor) -> None:
        path = self._cache_file(digest)
        temp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(
                dir=path.parent, prefix=f".{digest[:12]}-", suffix=".tmp"
            )
            with os.fdopen(handle, "wb") as file:
                np.save(file, vector.numpy().astype(np.float32, copy=False), allow_pickle=False)
            os.replace(temp, path)
            temp = None
        except OSError as e:
            logger.warning("Could not write embedding cache file %s (%s); continuing", path, e)
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)


@dataclass
class NegativeSelection:
    """The mined negatives, as pool indices, with the warnings raised while mining."""

    hard: list[int] = field(default_factory=list)
    """Nearest to the positives first."""
    easy: list[int] = field(default_factory=list)
    """In the order drawn."""
    warnings: list[str] = field(default_factory=list)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer, got {value!r}."
        raise ValueError(msg)
    if value < 0:
        msg = f"{name} must be zero or more, got {value}."
        raise ValueError(msg)
    return value


def mine_negatives(
    positives: Sequence[Image.Image],
    pool: NegativePool,
    num_hard: int = 100,
    num_easy: int = 100,
    near_duplicate_threshold: float = 0.95,
    seed: int = 0,
) -> NegativeSelection:
    """Pick the pool photos nearest to the positives (hard) and random others (easy).

    A pool photo's score is its highest cosine similarity to any positive. Photos scoring at or
    above `near_duplicate_threshold` are excluded as likely pictures of the subject. When the pool
    has too few usable photos, what exists is returned and a warning is logged and recorded.
    """
    num_hard = _check_count("num_hard", num_hard)
    num_easy = _check_count("num_easy", num_easy)
    if (
        isinstance(near_duplicate_threshold, bool)
        or not isinstance(near_duplicate_threshold, (int, float))
        or not 0.0 < near_duplicate_threshold <= 1.0
    ):
        msg = f"near_duplicate_threshold must be in (0, 1], got {near_duplicate_threshold!r}."
        raise ValueError(msg)
    if isinstance(seed, bool) or not isinstance(seed, int):
        msg = f"seed must be an integer, got {seed!r}."
        raise ValueError(msg)
    if len(positives) == 0:
        msg = "mine_negatives needs at least one positive photo of the concept, got none."
        raise ValueError(msg)

    pool_vectors = pool.embeddings()
    positive_vectors = pool.embedder.embed(positives)
    if len(pool) == 0:
        scores = torch.zeros(0)
    else:
        scores = (pool_vectors @ positive_vectors.T).max(dim=1).values
    excluded = scores >= near_duplicate_threshold - _SIMILARITY_TOLERANCE
    if bool(excluded.any()):
        labels = [pool.label(int(i)) for i in excluded.nonzero().flatten()]
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        logger.info(
            "Excluded %d pool photos as near-duplicates of the positives (similarity >= %s): %s",
            len(labels),
            near_duplicate_threshold,
            shown,
        )
    usable = (~excluded).nonzero().flatten()
    order = torch.sort(scores[usable], descending=True, stable=True).indices
    ranked = usable[order].tolist()
    hard = ranked[:num_hard]
    remaining = sorted(ranked[num_hard:])
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randperm(len(remaining), generator=generator)[:num_easy].tolist()
    easy = [remaining[i] for i in draw]

    warnings: list[str] = []
    if len(hard) < num_hard or len(easy) < num_easy:
        message = (
            f"The negative pool is too small: {len(pool)} photos, {int(excluded.sum())} excluded "
            f"as near-duplicates of the positives, {len(ranked)} usable; asked for {num_hard} hard "
            f"and {num_easy} easy negatives, got {len(hard)} hard and {len(easy)} easy. Hard "
            f"negatives matter for recognition accuracy (Yo'LLaVA: weighted recognition "
            f"{RECOGNITION_WITH_HARD_NEGATIVES} with hard negatives vs "
            f"{RECOGNITION_WITHOUT_HARD_NEGATIVES} without); add more photos of similar-looking "
            f"subjects to the pool."
        )
        logger.warning(message)
        warnings.append(message)
    return NegativeSelection(hard=hard, easy=easy, warnings=warnings)
