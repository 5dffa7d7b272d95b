"""`ConceptStore`: the agent's long-term memory of personal concepts, on Chroma.

Three collections, every record tagged with its `user_id` and every read and write filtered by it:
`concepts` (name, status taught / training / ready / failed, description, artifact path, the
recognition threshold, timestamps; its vector is the mean of the concept's photo embeddings),
`concept_photos` (one CLIP image embedding per photo) and `facts` (remembered sentences); plus the
teach jobs of every process on the store (`jobs`, a `JobBoard`: `jobs.py`). Photos
are copied into the data folder by content hash, one folder per user and concept, and the trained
artifact lives beside them, so forgetting a concept removes one folder and its records.

Forgetting leaves nothing readable behind, without ever touching Chroma's own files: descriptions
and facts are stored sealed with a key kept in the concept's folder (`sealing.py`), records name
photos by file name only, and the folder goes with the key. A forget interrupted by a crash is
finished when the store next opens (the folder records who asked, before anything is removed).

The instant tier: the moment a concept is added its photos are embedded, and `recognize` finds it
in new photos by cosine similarity above a threshold calibrated on negatives (the negative pool
and the user's other concepts). Collections always get our CLIP embedding function and explicit
vectors, never Chroma's default function (which would download a model).

By default the store is an embedded `chromadb.PersistentClient` in `$YOLLAVA_HOME/chroma`; give
`host`/`port` to use a Chroma server. Not here: training (the queue in `tools`) and the chat
model (it reaches the store through `StoreConceptSource`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import chromadb
import httpx
import numpy as np
import torch
from chromadb.api import ClientAPI
from chromadb.api.types import EmbeddingFunction, Embeddable
from chromadb.errors import ChromaError
from chromadb.utils.embedding_functions import register_embedding_function
from PIL import Image

from yollava_agent.concept import validate_concept_name
from yollava_agent.errors import UnknownConceptError, YoLLaVAError
from yollava_agent.memory.jobs import JobBoard
from yollava_agent.memory.sealing import ConceptKey, SealedTextError
from yollava_agent.images import ImageInput, load_image
from yollava_agent.paths import data_home
from yollava_agent.recognition import DEFAULT_THRESHOLD, calibrate_threshold  # noqa: F401
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder

logger = logging.getLogger(__name__)

ConceptStatus = Literal["taught", "training", "ready", "failed"]
STATUSES: tuple[ConceptStatus, ...] = ("taught", "training", "ready", "failed")

MAX_DESCRIPTION_CHARS = 500
"""Longest description of a concept: it goes into every prompt about the concept."""
MAX_FACT_CHARS = 1000
"""Longest fact; prompts carry the newest facts that fit their own budget."""
CALIBRATION_NEGATIVES = 512
"""Most pool photos used to calibrate a concept's threshold."""
MAX_USER_ID_LENGTH = 200
_FORGET_INTENT = "forgetting.json"
"""Written into a concept's folder before `forget` removes anything: who asked, which concept."""


class StoreError(YoLLaVAError):
    """The store cannot do what was asked; nothing stored was changed."""


class ConceptExistsError(StoreError, ValueError):
    """A concept of that name already exists for that user."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The Chroma server cannot be reached."""


class StoreWriteError(StoreError, OSError):
    """The data folder cannot be written (read-only, full, or gone)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_disk_failure(error: Exception) -> bool:
    """Chroma reports a full or read-only disk as an internal error; recognise it by its text."""
    text = str(error).lower()
    return any(sign in text for sign in ("readonly", "read-only", "disk is full", "disk i/o"))


def is_valid_user_id(user_id: object) -> bool:
    """The one rule for user ids (store, tools, agent context): a non-empty string of at most
    `MAX_USER_ID_LENGTH` characters."""
    return isinstance(user_id, str) and bool(user_id.strip()) and len(user_id) <= MAX_USER_ID_LENGTH


def _check_user(user_id: object) -> str:
    if not is_valid_user_id(user_id):
        msg = (
            f"User id {user_id!r} is not valid: give a non-empty string of at most "
            f"{MAX_USER_ID_LENGTH} characters."
        )
        raise ValueError(msg)
    return user_id


def _user_folder(user_id: str) -> str:
    # User ids come from auth systems (emails, UUIDs): hash them into safe folder names.
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:24]


def _record_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@register_embedding_function
class ClipEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Chroma embedding function over our `ClipEmbedder`: images in, unit vectors out.

    Chroma only calls it for inputs given without vectors; the store always passes vectors, and
    the function exists so that no collection ever falls back to Chroma's downloading default.
    """

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = None) -> None:
        self.embedder = ClipEmbedder(ClipConfig(model_name=model_name, pretrained=pretrained))

    def __call__(self, input: Embeddable) -> list[np.ndarray]:  # noqa: A002 - Chroma's name
        images = []
        for item in input:
            if isinstance(item, str):
                msg = "ClipEmbeddingFunction embeds images only; pass photos, not text."
                raise TypeError(msg)
            images.append(Image.fromarray(np.asarray(item, dtype=np.uint8)))
        return [row.numpy() for row in self.embedder.embed(images)]

    @staticmethod
    def name() -> str:
        return "yollava-clip"

    def get_config(self) -> dict[str, Any]:
        config = self.embedder.config
        return {"model_name": config.model_name, "pretrained": config.pretrained}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ClipEmbeddingFunction:
        return ClipEmbeddingFunction(config["model_name"], config.get("pretrained"))

    def default_space(self) -> str:
        return "cosine"


@dataclass(frozen=True)
class ConceptRecord:
    """A concept as the store knows it."""

    user_id: str
    name: str
    status: ConceptStatus
    description: str
    artifact_path: str
    """The trained concept folder; empty until training succeeded."""
    threshold: float
    """Cosine similarity above which a photo is taken to show this concept (instant tier)."""
    photo_count: int
    created: str
    updated: str
    uid: str
    """Unique per added concept: tells a concept from a later one of the same name."""
    error: str = ""
    """Why training failed, for status `failed`."""

    @classmethod
    def from_metadata(
        cls, metadata: dict[str, Any], description: str, folder: Path
    ) -> ConceptRecord:
        """The record of stored metadata, with its opened description and its concept folder."""
        artifact = metadata.get("artifact_path", "")
        return cls(
            user_id=metadata["user_id"],
            name=metadata["name"],
            status=metadata["status"],
            description=description,
            artifact_path=str(folder / artifact) if artifact else "",
            threshold=float(metadata["threshold"]),
            photo_count=int(metadata["photo_count"]),
            created=metadata["created"],
            updated=metadata["updated"],
            uid=metadata["uid"],
            error=metadata.get("error", ""),
        )


@dataclass(frozen=True)
class Fact:
    """A remembered sentence about a concept."""

    id: str
    concept: str
    text: str
    created: str


@dataclass(frozen=True)
class Recognition:
    """A concept found in a photo."""

    name: str
    score: float
    """Best cosine similarity between the photo and the concept's photos."""
    threshold: float


class ConceptStore:
    """Long-term memory of users' concepts, scoped by user id in every call."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        host: str | None = None,
        port: int = 8000,
        clip: ClipConfig | None = None,
        pool_folders: Sequence[str | Path] = (),
        base_vocabulary: Collection[str] = (),
    ) -> None:
        self.home = Path(home) if home is not None else data_home()
        self.base_vocabulary = base_vocabulary
        """Tokens of the base model in use: names whose tokens it already has are refused."""
        self.clip = clip or ClipConfig()
        self.embedder = ClipEmbedder(self.clip)
        self.pool_folders = [Path(p) for p in pool_folders]
        self.lock = threading.RLock()
        """Held for every change, so that check-then-write sequences are atomic in-process."""
        self.client = self._connect(host, port)
        function = ClipEmbeddingFunction(self.clip.model_name, self.clip.pretrained)
        function.embedder = self.embedder  # one CLIP model in memory, whatever the collection

        def collection(name: str) -> Any:
            return self._call(
                lambda: self.client.get_or_create_collection(
                    name, embedding_function=function, configuration={"hnsw": {"space": "cosine"}}
                )
            )

        self.concepts = collection("yollava_concepts")
        self.photos = collection("yollava_concept_photos")
        self.facts = collection("yollava_facts")
        self.negatives = collection("yollava_negative_pool")
        self.jobs = JobBoard(collection("yollava_jobs"), collection("yollava_job_owners"), self._call)
        """Teach jobs and their owners' heartbeats, shared by every process on this store."""
        self._finish_interrupted_forgets()

    def _connect(self, host: str | None, port: int) -> ClientAPI:
        settings = chromadb.Settings(anonymized_telemetry=False)
        if host is not None:
            try:
                client = chromadb.HttpClient(host=host, port=port, settings=settings)
                client.heartbeat()
            except Exception as e:
                raise self._unavailable(host, port, e) from e
            self._server = f"{host}:{port}"
            return client
        self._server = ""
        folder = self.home / "chroma"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(folder), settings=settings)
        except OSError as e:
            raise self._unwritable(folder, e) from e
        except Exception as e:
            if isinstance(e, ChromaError) and _is_disk_failure(e):
                raise self._unwritable(folder, e) from e
            raise self._unopenable(folder, e) from e

    def _unopenable(self, folder: Path, cause: Exception) -> StoreError:
        msg = (
            f"Chroma cannot open the store in {folder} ({type(cause).__name__}: {cause}). If it "
            "is damaged, restore the folder from a backup, or move it aside to start with an "
            f"empty store (the concepts' photos stay in {self.home / 'users'}); or set "
            "YOLLAVA_HOME to another data folder."
        )
        return StoreError(msg)

    def _unavailable(self, host: str, port: int, cause: Exception) -> StoreUnavailableError:
        msg = (
            f"The Chroma server at {host}:{port} is not reachable ({type(cause).__name__}: "
            f"{cause}). Start it (`chroma run --host {host} --port {port} --path DIR`) or use "
            "the embedded store (no host). Nothing was changed."
        )
        return StoreUnavailableError(msg)

    def _unwritable(self, folder: Path, cause: Exception) -> StoreWriteError:
        msg = (
            f"Cannot write to the data folder {folder} ({getattr(cause, 'strerror', None) or cause}): check that "
            "it is writable and the disk has space, or set YOLLAVA_HOME to another folder. "
            "Nothing already stored was changed."
        )
        return StoreWriteError(msg)

    def _call(self, operation: Any) -> Any:
        """Run a Chroma call: a lost server or an unwritable folder becomes a `StoreError`."""
        try:
            return operation()
        except (OSError, httpx.TransportError) as e:
            if self._server:
                host, _, port = self._server.rpartition(":")
                raise self._unavailable(host, int(port), e) from e
            if isinstance(e, OSError):
                raise self._unwritable(self.home / "chroma", e) from e
            raise
        except ChromaError as e:
            if _is_disk_failure(e):
                raise self._unwritable(self.home / "chroma", e) from e
            raise

    # ---- paths

    def concept_dir(self, user_id: str, name: str) -> Path:
        """Everything on disk of one concept: `photos/` and the trained concept folder."""
        return self.home / "users" / _user_folder(_check_user(user_id)) / "concepts" / name

    def artifact_dir(self, user_id: str, name: str) -> Path:
        """Where the trained concept folder of `name` goes (`teach` writes `parent / name`)."""
        return self.concept_dir(user_id, name) / name

    # ---- concepts

    def _where(self, user_id: str, name: str | None = None) -> dict[str, Any]:
        if name is None:
            return {"user_id": user_id}
        return {"$and": [{"user_id": user_id}, {"name": name}]}

    def get_concept(self, user_id: str, name: str) -> ConceptRecord:
        """The concept `name` of this user; `UnknownConceptError` names it and the user's others."""
        return self._record(self._metadata(user_id, name))

    def _metadata(self, user_id: str, name: str) -> dict[str, Any]:
        _check_user(user_id)
        found = self._call(lambda: self.concepts.get(ids=[_record_id(user_id, name)]))
        if not found["ids"]:
            known = sorted(c.name for c in self.list_concepts(user_id))
            msg = f"Unknown concept {name!r}: your concepts are {known or 'none yet'}."
            raise UnknownConceptError(msg)
        return found["metadatas"][0]

    def list_concepts(self, user_id: str) -> list[ConceptRecord]:
        """This user's concepts, by name."""
        _check_user(user_id)
        found = self._call(lambda: self.concepts.get(where=self._where(user_id)))
        return sorted((self._record(m) for m in found["metadatas"]), key=lambda c: c.name)

    def _record(self, metadata: dict[str, Any]) -> ConceptRecord:
        folder = self.concept_dir(metadata["user_id"], metadata["name"])
        opened = self._open_sealed(folder, [metadata.get("description", "")])
        return ConceptRecord.from_metadata(metadata, opened[0] if opened else "", folder)

    def _open_sealed(self, folder: Path, sealed: list[str]) -> list[str] | None:
        """Texts read from the concept's records, opened with its key; None when they are no
        longer the concept's: it is being forgotten (its key is gone), or it was forgotten and
        taught again between reading them and reading its key (they open with the old key only).
        """
        try:
            key = ConceptKey.of(folder)
        except SealedTextError:
            if folder.exists():
                logger.warning("The key file of the concept in %s is missing", folder)
            return None
        try:
            return [key.open(text) for text in sealed]
        except SealedTextError:
            return None

    def add_concept(
        self, user_id: str, name: str, photos: Sequence[ImageInput], description: str = ""
    ) -> ConceptRecord:
        """Remember a new concept from its photos: recognisable at once (instant tier).

        Photos are read and embedded before anything is written; a failure while writing removes
        what this call wrote, so the store is as it was.
        """
        _check_user(user_id)
        validate_concept_name(name, self.base_vocabulary)
        description = checked_text(description, MAX_DESCRIPTION_CHARS, f"The description of {name!r}")
        if not photos:
            msg = f"Concept {name!r} needs at least one photo; none were given."
            raise ValueError(msg)
        with self.lock:
            if self._call(lambda: self.concepts.get(ids=[_record_id(user_id, name)]))["ids"]:
                msg = (
                    f"You already have a concept named {name!r}. Forget it first, or choose "
                    "another name."
                )
                raise ConceptExistsError(msg)
            images, blobs, seen = [], [], set()
            for photo in photos:
                image = load_image(photo)
                blob = _photo_bytes(photo, image)
                digest = hashlib.sha256(blob[0]).hexdigest()
                if digest not in seen:  # the same photo given twice is one photo
                    seen.add(digest)
                    images.append(image)
                    blobs.append(blob)
            vectors = self.embedder.embed(images)
            threshold = calibrate_threshold(vectors, self._calibration_negatives(user_id))
            folder = self.concept_dir(user_id, name)
            written = False
            try:
                key, paths = self._write_photos(folder, blobs)
                written = True
                self._add_records(user_id, name, key.seal(description), vectors, paths, threshold)
            except BaseException:
                if written:  # undo only what this call wrote, never another writer's concept
                    try:
                        self._delete_records(user_id, name)
                    except StoreError as cleanup:
                        logger.warning("Could not undo the records of %r: %s", name, cleanup)
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)
                raise
        logger.info("Added concept %r for a user (%d photos, threshold %.3f)", name, len(paths), threshold)
        return self.get_concept(user_id, name)

    def _write_photos(
        self, folder: Path, blobs: list[tuple[bytes, str]]
    ) -> tuple[ConceptKey, list[Path]]:
        if folder.exists():
            msg = (
                f"Concept folder {folder} already exists: another writer is adding "
                f"{folder.name!r} right now, or an interrupted one left it. Try again, or choose "
                "another name."
            )
            raise ConceptExistsError(msg)
        staging = folder.parent / f".{folder.name}.new-{uuid.uuid4().hex[:8]}"
        try:
            (staging / "photos").mkdir(parents=True)
            key = ConceptKey.create(staging)
            paths = []
            for data, suffix in blobs:
                name = hashlib.sha256(data).hexdigest() + suffix
                (staging / "photos" / name).write_bytes(data)
                paths.append(folder / "photos" / name)
            staging.rename(folder)
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._unwritable(folder.parent, e) from e
        return key, list(dict.fromkeys(paths))

    def _add_records(
        self,
        user_id: str,
        name: str,
        sealed_description: str,
        vectors: torch.Tensor,
        paths: list[Path],
        threshold: float,
    ) -> None:
        unique = {path: vectors[i] for i, path in enumerate(paths)}
        self._call(
            lambda: self.photos.add(
                ids=[_record_id(user_id, name, p.name) for p in unique],
                embeddings=[v.numpy() for v in unique.values()],
                metadatas=[{"user_id": user_id, "concept": name, "file": p.name} for p in unique],
            )
        )
        centroid = torch.nn.functional.normalize(vectors.mean(0), dim=0)
        now = _now()
        metadata = {
            "user_id": user_id,
            "name": name,
            "status": "taught",
            "description": sealed_description,
            "artifact_path": "",
            "threshold": threshold,
            "photo_count": len(unique),
            "created": now,
            "updated": now,
            "uid": uuid.uuid4().hex,
            "error": "",
        }
        self._call(
            lambda: self.concepts.add(
                ids=[_record_id(user_id, name)], embeddings=[centroid.numpy()], metadatas=[metadata]
            )
        )

    def _calibration_negatives(self, user_id: str) -> torch.Tensor:
        rows = []
        pool = self._call(lambda: self.negatives.get(limit=CALIBRATION_NEGATIVES, include=["embeddings"]))
        rows.extend(pool["embeddings"])
        own = self._call(lambda: self.photos.get(where={"user_id": user_id}, include=["embeddings"]))
        rows.extend(own["embeddings"])
        if not rows:
            return torch.zeros((0, 1))
        return torch.tensor(np.asarray(rows), dtype=torch.float32)

    def set_status(
        self,
        user_id: str,
        name: str,
        status: ConceptStatus,
        *,
        artifact_path: str | Path | None = None,
        error: str = "",
    ) -> ConceptRecord:
        """Move a concept to another status (the training queue does this)."""
        if status not in STATUSES:
            msg = f"Unknown status {status!r}: use one of {list(STATUSES)}."
            raise ValueError(msg)
        with self.lock:
            record = self.get_concept(user_id, name)
            update: dict[str, Any] = {"status": status, "updated": _now(), "error": error}
            if artifact_path is not None:
                # Relative to the concept's folder, so no record spells out where the concept lived.
                folder = self.concept_dir(user_id, name)
                path = Path(artifact_path)
                update["artifact_path"] = str(path.relative_to(folder) if path.is_relative_to(folder) else path)
            self._call(lambda: self.concepts.update(ids=[_record_id(user_id, record.name)], metadatas=[update]))
        return self.get_concept(user_id, name)

    def photo_paths(self, user_id: str, name: str) -> list[Path]:
        """The stored photos of a concept."""
        self.get_concept(user_id, name)
        found = self._call(lambda: self.photos.get(where={"$and": [{"user_id": user_id}, {"concept": name}]}))
        photos = self.concept_dir(user_id, name) / "photos"
        return sorted(photos / m["file"] for m in found["metadatas"])

    def forget(self, user_id: str, name: str) -> None:
        """Remove the concept: its records, facts, photos and trained artifact, nothing else.

        The concept's folder first records that it is being forgotten and is moved aside; then
        the records go, then the folder with the key of the sealed text. A crash at any point is
        finished by the next store opened on this data folder.
        """
        with self.lock:
            uid = self._metadata(user_id, name)["uid"]
            folder = self.concept_dir(user_id, name)
            retired = folder.parent / f".{name}.forget-{uuid.uuid4().hex[:8]}"
            if folder.exists():
                intent = {"user_id": user_id, "name": name, "uid": uid}
                try:
                    _write_json_durably(folder / _FORGET_INTENT, intent)
                    folder.rename(retired)
                except OSError as e:
                    (folder / _FORGET_INTENT).unlink(missing_ok=True)
                    raise self._unwritable(folder.parent, e) from e
            try:
                self._delete_records(user_id, name)
            except BaseException:
                if retired.exists():
                    retired.rename(folder)  # nothing forgotten: records and files stay together
                    (folder / _FORGET_INTENT).unlink(missing_ok=True)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        logger.info("Forgot concept %r of a user", name)

    def _finish_interrupted_forgets(self) -> None:
        """Complete every forget a crash interrupted: the user asked for it, and was not told it
        failed, so the records and files go now (a concept taught again since, with another uid,
        keeps its records)."""
        users = self.home / "users"
        if not users.is_dir():
            return
        for intent_file in users.glob(f"*/concepts/*/{_FORGET_INTENT}"):
            folder = intent_file.parent
            try:
                intent = json.loads(intent_file.read_text(encoding="utf-8"))
                user_id, name = intent["user_id"], intent["name"]
            except (OSError, ValueError, KeyError) as e:
                logger.warning("Cannot read %s (%s): left in place", intent_file, e)
                continue
            found = self._call(lambda: self.concepts.get(ids=[_record_id(user_id, name)]))
            same_concept = bool(found["ids"]) and found["metadatas"][0]["uid"] == intent["uid"]
            if same_concept:
                self._delete_records(user_id, name)
            if same_concept or not found["ids"] or folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)
            else:
                intent_file.unlink()  # a live folder of a concept taught again since
            logger.info("Finished forgetting concept %r of a user after an interruption", name)

    def _delete_records(self, user_id: str, name: str) -> None:
        self._call(lambda: self.photos.delete(where={"$and": [{"user_id": user_id}, {"concept": name}]}))
        self._call(lambda: self.facts.delete(where={"$and": [{"user_id": user_id}, {"concept": name}]}))
        self._call(lambda: self.concepts.delete(ids=[_record_id(user_id, name)]))
        self.jobs.delete(user_id, name)

    # ---- facts

    def remember(self, user_id: str, name: str, fact: str) -> Fact:
        """Store a fact about a concept ("bo's birthday is May 3")."""
        record = self.get_concept(user_id, name)
        text = checked_text(fact, MAX_FACT_CHARS, f"The fact about {name!r}")
        if not text:
            msg = f"The fact about {name!r} is empty: say what to remember."
            raise ValueError(msg)
        key = ConceptKey.of(self.concept_dir(user_id, record.name))
        item = Fact(id=uuid.uuid4().hex[:12], concept=name, text=text, created=_now())
        centroid = self._call(
            lambda: self.concepts.get(ids=[_record_id(user_id, record.name)], include=["embeddings"])
        )["embeddings"][0]
        self._call(
            lambda: self.facts.add(
                ids=[_record_id(user_id, name, "fact", item.id)],
                embeddings=[centroid],
                documents=[key.seal(text)],
                metadatas=[
                    {
                        "user_id": user_id,
                        "concept": name,
                        "fact_id": item.id,
                        "created": item.created,
                        "order": time.time_ns(),
                    }
                ],
            )
        )
        return item

    def list_facts(self, user_id: str, name: str) -> list[Fact]:
        """The facts remembered about a concept, oldest first."""
        self.get_concept(user_id, name)
        found = self._call(lambda: self.facts.get(where={"$and": [{"user_id": user_id}, {"concept": name}]}))
        ordered = sorted(
            zip(found["metadatas"], found["documents"], strict=True), key=lambda pair: pair[0]["order"]
        )
        texts = self._open_sealed(self.concept_dir(user_id, name), [doc for _, doc in ordered])
        if texts is None:
            return []  # the facts read belong to a concept forgotten since
        return [
            Fact(id=m["fact_id"], concept=name, text=text, created=m["created"])
            for (m, _), text in zip(ordered, texts, strict=True)
        ]

    def forget_fact(self, user_id: str, name: str, fact_id: str) -> None:
        """Remove one fact; `UnknownConceptError` names a fact id the concept does not have."""
        if fact_id not in {f.id for f in self.list_facts(user_id, name)}:
            msg = f"Concept {name!r} has no fact {fact_id!r}; list its facts to see their ids."
            raise UnknownConceptError(msg)
        self._call(lambda: self.facts.delete(ids=[_record_id(user_id, name, "fact", fact_id)]))

    # ---- recognition

    def recognize(self, user_id: str, image: ImageInput) -> list[Recognition]:
        """This user's concepts whose photos resemble `image` above their thresholds, best first."""
        _check_user(user_id)
        vector = self.embedder.embed([load_image(image)])[0]
        records = {c.name: c for c in self.list_concepts(user_id)}
        if not records:
            return []
        found = self._call(
            lambda: self.photos.query(
                query_embeddings=[vector.numpy()],
                n_results=min(sum(c.photo_count for c in records.values()), 256),
                where={"user_id": user_id},
                include=["metadatas", "distances"],
            )
        )
        best: dict[str, float] = {}
        for metadata, distance in zip(found["metadatas"][0], found["distances"][0], strict=True):
            if metadata is None:
                continue  # a photo deleted while the index answered: Chroma gives no metadata
            score = 1.0 - float(distance)
            best[metadata["concept"]] = max(score, best.get(metadata["concept"], -1.0))
        hits = [
            Recognition(name, score, records[name].threshold)
            for name, score in best.items()
            if name in records and score >= records[name].threshold
        ]
        return sorted(hits, key=lambda r: r.score, reverse=True)

    # ---- negative pool

    def index_pool(self, folder: str | Path) -> int:
        """Add the photos of a folder to the negative pool (only those not indexed yet)."""
        from yollava_agent.training.negatives import NegativePool

        pool = NegativePool([folder], self.embedder, cache_dir=self.home / "clip-cache")
        ids = [_record_id("pool", pool.label(i)) for i in range(len(pool))]
        known = set(self._call(lambda: self.negatives.get(ids=ids, include=[]))["ids"]) if ids else set()
        new = [i for i, record_id in enumerate(ids) if record_id not in known]
        if new:
            vectors = pool.embeddings()
            self._call(
                lambda: self.negatives.add(
                    ids=[ids[i] for i in new],
                    embeddings=[vectors[i].numpy() for i in new],
                    metadatas=[{"path": pool.label(i)} for i in new],
                )
            )
        if Path(folder) not in self.pool_folders:
            self.pool_folders.append(Path(folder))
        return len(new)


def _photo_bytes(photo: ImageInput, image: Image.Image) -> tuple[bytes, str]:
    """The bytes to keep of a photo: the file as given, else a PNG of the image."""
    if isinstance(photo, str | Path) and not str(photo).startswith(("data:", "http")):
        path = Path(str(photo).removeprefix("file://")).expanduser()
        return path.read_bytes(), path.suffix.lower() or ".jpg"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"



def _write_json_durably(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())


def checked_text(text: object, limit: int, what: str) -> str:
    """`text` stripped, or a `ValueError` naming `what` when it is longer than `limit`."""
    stripped = text.strip() if isinstance(text, str) else ""
    if len(stripped) > limit:
        msg = (
            f"{what} is {len(stripped):,} characters long; the limit is {limit:,}. Say it in "
            "fewer words, or split it into several facts."
        )
        raise ValueError(msg)
    return stripped
