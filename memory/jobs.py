"""`JobBoard`: teach jobs as the store keeps them, so that every replica on one store sees them.

Two Chroma collections beside the store's own. `yollava_jobs` holds the latest job of each concept
(one record per user and name): its id, state (queued, running, done, failed, cancelled), the owner
that submitted it (a `TrainingQueue`, one per process), the worker that runs it, the latest
progress event, a cancel request and times. `yollava_job_owners` holds one heartbeat per owner: an
owner whose heartbeat is older than the queue's stale limit is gone, and so are its jobs.

Only a job's owner writes its state and progress; another replica asks for a cancel by flagging the
record, and the owner sees the flag on its next heartbeat. Writes go through `update`, which never
recreates a record that `forget` removed meanwhile; only `put` (a new submission) creates one.

Times are wall-clock seconds (`time.time()`): replicas on several machines need synchronised clocks
(NTP), with a stale limit well above the heartbeat interval plus any skew. Records carry no sealed
text: a concept's name and numbers only, and they go with the concept when it is forgotten.

Not here: running jobs and deciding when an owner is stale (both in `tools/queue.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from yollava_agent.training.trainer import TrainingEvent

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE_JOB_STATES: tuple[JobState, ...] = ("queued", "running")
_NO_VECTOR = [1.0]
"""Chroma stores a vector with every record; job and owner records are looked up by id only."""


@dataclass(frozen=True)
class JobRecord:
    """A teach job as the store knows it."""

    user_id: str
    name: str
    job_id: str
    """Unique per submission: tells a job from a later one of the same concept."""
    concept_uid: str
    """The concept's `uid` when it was submitted."""
    state: JobState
    owner: str
    """The queue that submitted it and writes its state (see `JobBoard.beat`)."""
    worker: str = ""
    """What runs it, in words ("thread of pid 12 on host", "Ray actor ... pid 40 on 10.0.0.2")."""
    error: str = ""
    progress: TrainingEvent | None = None
    cancel_requested: bool = False
    submitted: float = 0.0
    updated: float = 0.0

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state in ACTIVE_JOB_STATES

    def to_metadata(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["progress"] = _progress_text(self.progress)
        return fields

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> JobRecord:
        fields = {f.name: metadata[f.name] for f in dataclasses.fields(cls) if f.name in metadata}
        text = fields.get("progress") or ""
        fields["progress"] = TrainingEvent(**json.loads(text)) if text else None
        return cls(**fields)


def _progress_text(event: TrainingEvent | None) -> str:
    return json.dumps(dataclasses.asdict(event)) if event is not None else ""


def _job_id(user_id: str, name: str) -> str:
    return hashlib.sha256(f"{user_id}\x1f{name}\x1fjob".encode()).hexdigest()


def new_owner_id() -> str:
    """A queue's owner id: host, process and a random part (a process may run several queues)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class JobBoard:
    """Job and owner records on the store's Chroma (see the module docstring)."""

    def __init__(self, jobs: Any, owners: Any, call: Callable[[Callable[[], Any]], Any]) -> None:
        self._jobs = jobs
        self._owners = owners
        self._call = call
        """The store's wrapper: a lost server or an unwritable folder becomes a `StoreError`."""

    # ---- jobs

    def put(self, record: JobRecord) -> None:
        """Record a new submission, replacing the concept's previous job record."""
        record = dataclasses.replace(record, updated=time.time())
        self._call(
            lambda: self._jobs.upsert(
                ids=[_job_id(record.user_id, record.name)],
                embeddings=[_NO_VECTOR],
                metadatas=[record.to_metadata()],
            )
        )

    def update(self, user_id: str, name: str, job_id: str, **changes: Any) -> bool:
        """Change fields of job `job_id`; False (nothing written) when the concept's record is
        gone or belongs to another job."""
        current = self.get(user_id, name)
        if current is None or current.job_id != job_id:
            return False
        if "progress" in changes:
            changes["progress"] = _progress_text(changes["progress"])
        changes["updated"] = time.time()
        self._call(
            lambda: self._jobs.update(ids=[_job_id(user_id, name)], metadatas=[changes])
        )
        return True

    def get(self, user_id: str, name: str) -> JobRecord | None:
        """The latest job of a user's concept, if one was recorded."""
        found = self._call(lambda: self._jobs.get(ids=[_job_id(user_id, name)]))
        return JobRecord.from_metadata(found["metadatas"][0]) if found["ids"] else None

    def of_user(self, user_id: str) -> list[JobRecord]:
        """The latest job of each of the user's concepts, by name."""
        found = self._call(lambda: self._jobs.get(where={"user_id": user_id}))
        records = (JobRecord.from_metadata(m) for m in found["metadatas"])
        return sorted(records, key=lambda r: r.name)

    def active(self) -> list[JobRecord]:
        """Every queued or running job, of every user."""
        where = {"state": {"$in": list(ACTIVE_JOB_STATES)}}
        found = self._call(lambda: self._jobs.get(where=where))
        return [JobRecord.from_metadata(m) for m in found["metadatas"]]

    def delete(self, user_id: str, name: str) -> None:
        """Remove the concept's job record (when the concept is forgotten)."""
        self._call(lambda: self._jobs.delete(ids=[_job_id(user_id, name)]))

    # ---- owners

    def beat(self, owner: str) -> None:
        """Say that `owner` is alive now."""
        self._call(
            lambda: self._owners.upsert(
                ids=[owner],
                embeddings=[_NO_VECTOR],
                metadatas=[{"owner": owner, "heartbeat": time.time()}],
            )
        )

    def retire(self, owner: str) -> None:
        """`owner` stopped: its unfinished jobs are interrupted from now on."""
        self._call(lambda: self._owners.delete(ids=[owner]))

    def heartbeats(self) -> dict[str, float]:
        """Every owner's latest heartbeat (wall-clock seconds)."""
        found = self._call(lambda: self._owners.get())
        return {m["owner"]: float(m["heartbeat"]) for m in found["metadatas"]}
