"""`TrainingQueue`: teach jobs run in the background, one at a time, with status and cancel.

One queue owns one worker thread and one base model of its own (loaded on the first job), so it
trains one concept at a time per device while the chat keeps answering on its shared model; run
one queue per GPU. A job's concept is marked `training` in the store from submission on: if the
process dies, the next queue on that store marks such concepts `failed` ("interrupted"), and
they can be submitted again. Progress is the latest `TrainingEvent`.

Not here: choosing photos (the store has them) and the tools that call this.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yollava_agent.errors import UnknownConceptError, YoLLaVAError
from yollava_agent.loading import load_llava
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import NegativePool
from yollava_agent.training.teach import teach
from yollava_agent.training.trainer import TrainingCancelled, TrainingEvent

from yollava_agent.memory.store import ConceptStore

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
INTERRUPTED = (
    "interrupted before it finished (the process stopped); teach it again with no photos to "
    "retrain it from its stored photos"
)


class JobRunningError(YoLLaVAError, ValueError):
    """A concept that is already queued or training was submitted again."""


@dataclass
class TrainingJob:
    """One teach job and what is known of it."""

    user_id: str
    name: str
    concept_uid: str
    """The concept's `uid`: a job never settles a later concept of the same name."""
    state: JobState = "queued"
    progress: TrainingEvent | None = None
    error: str = ""
    submitted: float = field(default_factory=time.time)
    finished: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> str:
        """One line for people: state, epoch, loss, accuracy and time left."""
        if self.state == "running" and self.progress is not None:
            p = self.progress
            accuracy = "-" if p.accuracy is None else f"{p.accuracy:.2f}"
            return (
                f"training {self.name!r}: epoch {p.epoch}/{p.epochs}, step {p.step}/"
                f"{p.steps_per_epoch}, loss {p.loss:.3f}, recognition accuracy {accuracy}, "
                f"about {p.eta_seconds:.0f} s left"
            )
        if self.state == "failed":
            return f"training {self.name!r} failed: {self.error}"
        return f"training {self.name!r}: {self.state}"


class TrainingQueue:
    """Background teach jobs over a `ConceptStore`."""

    def __init__(
        self,
        store: ConceptStore,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        config: TrainingConfig | None = None,
        runtime_factory: Callable[[], LlavaRuntime] | None = None,
    ) -> None:
        self.store = store
        self.config = config or TrainingConfig()
        self._runtime_factory = runtime_factory or (lambda: load_llava(model, device, dtype))
        self._runtime: LlavaRuntime | None = None
        self._jobs: dict[tuple[str, str], TrainingJob] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[TrainingJob | None] = queue.Queue()
        self._closing = False
        self.fail_interrupted()
        self._worker = threading.Thread(target=self._work, name="yollava-training", daemon=True)
        self._worker.start()

    def fail_interrupted(self) -> list[str]:
        """Mark concepts left `training` by a process that died as `failed`; return their names."""
        failed = []
        for user_id in self._users_with_training():
            for record in self.store.list_concepts(user_id):
                if record.status == "training" and (user_id, record.name) not in self._jobs:
                    self.store.set_status(user_id, record.name, "failed", error=INTERRUPTED)
                    failed.append(record.name)
        return failed

    def _users_with_training(self) -> set[str]:
        found = self.store.concepts.get(where={"status": "training"})
        return {m["user_id"] for m in found["metadatas"]}

    def submit(self, user_id: str, name: str) -> TrainingJob:
        """Queue training of a concept already in the store."""
        record = self.store.get_concept(user_id, name)
        with self._lock:
            current = self._jobs.get((user_id, name))
            if current is not None and current.state in ("queued", "running"):
                msg = (
                    f"{name!r} is already {current.state} ({current.describe()}); wait for it "
                    "or cancel it first."
                )
                raise JobRunningError(msg)
            job = TrainingJob(user_id, record.name, record.uid)
            self._jobs[(user_id, name)] = job
        self.store.set_status(user_id, name, "training")
        self._pending.put(job)
        return job

    def job(self, user_id: str, name: str) -> TrainingJob | None:
        """The latest job of this user's concept, if any ran in this process."""
        with self._lock:
            return self._jobs.get((user_id, name))

    def cancel(self, user_id: str, name: str, timeout: float | None = 60.0) -> bool:
        """Stop a queued or running job; True once it has stopped, False when none was active
        or a running job did not stop within `timeout`."""
        job = self.job(user_id, name)
        if job is None or job.finished.is_set():
            return False
        job.cancel.set()
        if job.state == "queued":
            self._finish(job, "cancelled")  # never started: nothing to wait for
            return True
        return job.finished.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the worker; unfinished concepts stay `training`, so the next queue marks them
        interrupted (failed) and they can be retrained."""
        self._closing = True
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        self._pending.put(None)
        self._worker.join(timeout)

    def _work(self) -> None:
        while (job := self._pending.get()) is not None:
            if job.finished.is_set():
                continue  # cancelled while queued
            if job.cancel.is_set():
                self._finish(job, "cancelled")
                continue
            job.state = "running"
            try:
                self._run(job)
            except TrainingCancelled:
                self._finish(job, "cancelled")
            except UnknownConceptError:
                self._finish(job, "cancelled")  # forgotten while queued
            except Exception as e:  # noqa: BLE001 - a job's failure must not stop the worker
                logger.exception("Training %r failed", job.name)
                job.error = f"{type(e).__name__}: {e}"
                self._settle(job, "failed", error=job.error)
                self._finish(job, "failed")
            else:
                self._finish(job, "done")

    def _run(self, job: TrainingJob) -> None:
        if self._runtime is None:
            self._runtime = self._runtime_factory()
        record = self.store.get_concept(job.user_id, job.name)
        photos = self.store.photo_paths(job.user_id, job.name)
        others: list[Path] = []
        for other in self.store.list_concepts(job.user_id):
            if other.name != job.name:
                with contextlib.suppress(UnknownConceptError):  # forgotten meanwhile
                    others.extend(self.store.photo_paths(job.user_id, other.name))
        pool = NegativePool(
            [*self.store.pool_folders, *others], self.store.embedder, self.store.home / "clip-cache"
        )

        def report(event: TrainingEvent) -> None:
            job.progress = event

        folder = teach(
            self._runtime,
            job.name,
            photos,
            self.store.artifact_dir(job.user_id, job.name).parent,
            pool,
            self.config,
            record.description,
            report,
            job.cancel,
        )
        if not self._settle(job, "ready", artifact_path=folder):
            shutil.rmtree(folder, ignore_errors=True)  # its concept was forgotten meanwhile
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the concept folder, if nothing else is in it

    def _settle(self, job: TrainingJob, status: str, **details: object) -> bool:
        """Record the job's outcome on its concept; False when that concept is gone."""
        with self.store.lock:
            try:
                record = self.store.get_concept(job.user_id, job.name)
            except UnknownConceptError:
                record = None
            if record is None or record.uid != job.concept_uid:
                logger.info("Concept %r was forgotten while training", job.name)
                return False
            self.store.set_status(job.user_id, job.name, status, **details)  # type: ignore[arg-type]
            return True

    def _finish(self, job: TrainingJob, state: JobState) -> None:
        if state == "cancelled" and not self._closing:
            self._settle(job, "taught")
        job.state = state
        job.finished.set()
