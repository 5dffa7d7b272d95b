"""`TrainingQueue`: teach jobs in the background, with status, progress and cancel, on a store that
several processes (app replicas) may share.

A queue runs its jobs on its workers, one job at a time on each. The default is one worker: a
thread of this process with a base model of its own (loaded on the first job), so it trains one
concept at a time while the chat keeps answering on its shared model. With `RayBackend`
(`ray_backend.py`, the optional `ray` extra) each worker is a Ray actor instead, as many as the
cluster holds.

Every job is recorded in the store's `JobBoard` (`memory/jobs.py`) under its owner, the queue that
submitted it (one owner id per queue): state, worker and the latest progress (written at most once
a second), so that any replica on the store shows it. The queue beats its owner's heartbeat every
`heartbeat_seconds`. When it starts, and on every beat, it fails the jobs whose owner has not
beaten for `stale_seconds` (a process that stopped) and the concepts left `training` with no job,
never the jobs of a live replica; a failed concept can be submitted again. A cancel asked on
another replica reaches the owner through the job's record, on the owner's next beat.

Not here: choosing photos (the store has them) and the tools that call this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from yollava_agent.errors import UnknownConceptError, YoLLaVAError
from yollava_agent.loading import load_llava
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder, NegativePool
from yollava_agent.training.teach import teach
from yollava_agent.training.trainer import TrainingCancelled, TrainingEvent

from yollava_agent.memory.jobs import ACTIVE_JOB_STATES, JobRecord, JobState, new_owner_id
from yollava_agent.memory.store import ConceptStore, StoreError

logger = logging.getLogger(__name__)

INTERRUPTED = (
    "interrupted before it finished (the process stopped); teach it again with no photos to "
    "retrain it from its stored photos"
)
PROGRESS_WRITE_SECONDS = 1.0
"""Most often a running job's progress is written to the store (workers report every step)."""
CANCEL_POLL_SECONDS = 0.2
"""How often a cancel of another replica's job looks whether the job has stopped."""


class JobRunningError(YoLLaVAError, ValueError):
    """A concept that is already queued or training was submitted again."""


class WorkerLostError(YoLLaVAError, RuntimeError):
    """The worker running a job stopped before the job finished (a killed actor, a lost node)."""


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
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    owner: str = ""
    """The queue that runs it (`TrainingQueue.owner`)."""
    worker: str = ""
    """What trains it, in words, once it runs."""
    config: TrainingConfig | None = None
    """Its recipe: the queue's `config` when it was submitted."""

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

    @classmethod
    def from_record(cls, record: JobRecord) -> TrainingJob:
        """A snapshot of another queue's job, as the store shows it."""
        job = cls(
            record.user_id,
            record.name,
            record.concept_uid,
            record.state,
            record.progress,
            record.error,
            record.submitted,
            id=record.job_id,
            owner=record.owner,
            worker=record.worker,
        )
        if not record.active:
            job.finished.set()
        if record.cancel_requested:
            job.cancel.set()
        return job


@dataclass(frozen=True)
class TrainingTask:
    """What a worker needs to train one concept: plain data, paths inside the data folder."""

    name: str
    photos: list[Path]
    out_dir: Path
    """`teach` writes the concept folder `out_dir / name` there, atomically."""
    pool: list[Path]
    """Folders and photos to mine negatives from."""
    clip: ClipConfig
    clip_cache: Path
    """Where pool embeddings are cached (shared by every worker on the data folder)."""
    config: TrainingConfig
    description: str


def run_task(
    runtime: LlavaRuntime,
    task: TrainingTask,
    embedder: ClipEmbedder,
    report: Callable[[TrainingEvent], None],
    cancel: threading.Event,
) -> Path:
    """Train `task` on `runtime` (what every worker does with a job); the concept folder."""
    pool = NegativePool(task.pool, embedder, task.clip_cache)
    return teach(
        runtime,
        task.name,
        task.photos,
        task.out_dir,
        pool,
        task.config,
        task.description,
        report,
        cancel,
    )


class TrainingWorker(Protocol):
    """Trains one concept at a time for a queue: a thread here, a Ray actor in `ray_backend`."""

    @property
    def name(self) -> str:
        """What it is, in words, for job records and status lines."""
        ...

    def start(self, closing: threading.Event) -> None:
        """Get ready to train (say, wait for an actor to load its model); return early once
        `closing` is set."""
        ...

    def train(
        self, task: TrainingTask, report: Callable[[TrainingEvent], None], cancel: threading.Event
    ) -> Path:
        """Train `task` and return its concept folder; `TrainingCancelled` once `cancel` stops it,
        `WorkerLostError` when the worker itself stopped meanwhile."""
        ...

    def close(self) -> None:
        """Release what the worker holds."""
        ...


class TrainingBackend(Protocol):
    """Where a queue's jobs run: it makes the queue's workers (`RayBackend`)."""

    def workers(
        self, model: str | None, device: str | None, dtype: str | None
    ) -> list[TrainingWorker]:
        """Workers that load `model` (hub id, folder or tiny name) on `device` in `dtype`."""
        ...


class ThreadWorker:
    """The default worker: a thread of this process, with a base model of its own."""

    def __init__(self, runtime_factory: Callable[[], LlavaRuntime], embedder: ClipEmbedder) -> None:
        self._runtime_factory = runtime_factory
        self._runtime: LlavaRuntime | None = None
        self._embedder = embedder
        """The store's CLIP: one CLIP model in memory for recognition and negatives."""
        self.name = f"a thread of pid {os.getpid()} on {socket.gethostname()}"

    def start(self, closing: threading.Event) -> None:
        """Nothing to wait for: the model loads with the first job."""

    def train(
        self, task: TrainingTask, report: Callable[[TrainingEvent], None], cancel: threading.Event
    ) -> Path:
        if self._runtime is None:
            self._runtime = self._runtime_factory()
        return run_task(self._runtime, task, self._embedder, report, cancel)

    def close(self) -> None:
        """The thread's model goes with the queue."""


class TrainingQueue:
    """Background teach jobs over a `ConceptStore`, visible to every process on that store."""

    def __init__(
        self,
        store: ConceptStore,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        config: TrainingConfig | None = None,
        runtime_factory: Callable[[], LlavaRuntime] | None = None,
        *,
        backend: TrainingBackend | None = None,
        heartbeat_seconds: float = 5.0,
        stale_seconds: float = 30.0,
    ) -> None:
        if not 0 < heartbeat_seconds < stale_seconds:
            msg = (
                f"heartbeat_seconds ({heartbeat_seconds}) must be positive and below "
                f"stale_seconds ({stale_seconds}), or live replicas would pass for stopped ones."
            )
            raise ValueError(msg)
        if backend is not None and runtime_factory is not None:
            msg = (
                "runtime_factory is for the in-process thread; a backend's workers load their own "
                "model from `model`, `device` and `dtype`. Pass one of the two."
            )
            raise ValueError(msg)
        self.store = store
        self.config = config or TrainingConfig()
        """The recipe of jobs submitted from now on."""
        self.owner = new_owner_id()
        """This queue's id in the store's job records."""
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        """An owner without a heartbeat for this long has stopped, and its jobs are failed."""
        if backend is None:
            factory = runtime_factory or (lambda: load_llava(model, device, dtype))
            self.workers: list[TrainingWorker] = [ThreadWorker(factory, store.embedder)]
        else:
            self.workers = backend.workers(model, device, dtype)
        self._jobs: dict[tuple[str, str], TrainingJob] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[TrainingJob | None] = queue.Queue()
        self._closing = threading.Event()
        self.store.jobs.beat(self.owner)
        self.fail_interrupted()
        self._threads = [
            threading.Thread(target=self._work, args=(w,), name=f"yollava-train-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        self._keeper = threading.Thread(target=self._keep, name="yollava-heartbeat", daemon=True)
        for thread in [*self._threads, self._keeper]:
            thread.start()

    # ---- owners and interrupted jobs

    def fail_interrupted(self) -> list[str]:
        """Fail the jobs of owners that stopped beating and the concepts left `training` with no
        live job; return those concepts' names. Live replicas' jobs are never touched."""
        # Concepts first: a submission records its job before it marks the concept `training`,
        # so every job of a concept seen training here is among the jobs read next.
        training = self._training_concepts()
        jobs = {(r.user_id, r.name): r for r in self.store.jobs.active()}
        live = self._live_owners()
        for record in jobs.values():
            if record.owner not in live:
                self.store.jobs.update(
                    record.user_id, record.name, record.job_id, state="failed", error=INTERRUPTED
                )
        failed = []
        for user_id, name, uid in training:
            job = jobs.get((user_id, name))
            if job is not None and job.owner in live and job.concept_uid == uid:
                continue
            if self._fail_concept(user_id, name, uid):
                failed.append(name)
        if failed:
            logger.warning("Marked %d interrupted training job(s) as failed", len(failed))
        return failed

    def _training_concepts(self) -> list[tuple[str, str, str]]:
        found = self.store.concepts.get(where={"status": "training"})
        return [(m["user_id"], m["name"], m["uid"]) for m in found["metadatas"]]

    def _live_owners(self) -> set[str]:
        now = time.time()
        beats = self.store.jobs.heartbeats()
        return {owner for owner, beat in beats.items() if now - beat <= self.stale_seconds} | {
            self.owner
        }

    def _fail_concept(self, user_id: str, name: str, uid: str) -> bool:
        with self.store.lock:
            try:
                record = self.store.get_concept(user_id, name)
            except UnknownConceptError:
                return False
            if record.status != "training" or record.uid != uid:
                return False  # settled meanwhile, or a later concept of that name
            self.store.set_status(user_id, name, "failed", error=INTERRUPTED)
        return True

    def _keep(self) -> None:
        """Beat, pass on cancels asked elsewhere, and fail stopped owners' jobs, until closed."""
        while not self._closing.wait(self.heartbeat_seconds):
            try:
                self.store.jobs.beat(self.owner)
                self._take_cancel_requests()
                self.fail_interrupted()
            except Exception as e:  # noqa: BLE001 - a failed beat must not stop the next ones
                logger.warning("Training heartbeat failed (%r); trying again", e)

    def _take_cancel_requests(self) -> None:
        with self._lock:
            mine = {job.id: job for job in self._jobs.values() if not job.finished.is_set()}
        if not mine:
            return
        for record in self.store.jobs.active():
            job = mine.get(record.job_id)
            if job is not None and record.cancel_requested and not job.cancel.is_set():
                logger.info("Cancelling %r, as another replica asked", job.name)
                self._cancel_local(job)

    # ---- jobs

    def submit(self, user_id: str, name: str) -> TrainingJob:
        """Queue training of a concept already in the store."""
        record = self.store.get_concept(user_id, name)
        current = self.job(user_id, name)
        if current is not None and current.state in ACTIVE_JOB_STATES:
            elsewhere = current.owner != self.owner
            if not elsewhere or current.owner in self._live_owners():
                where = " on another replica" if elsewhere else ""
                msg = (
                    f"{name!r} is already {current.state}{where} ({current.describe()}); wait "
                    "for it or cancel it first."
                )
                raise JobRunningError(msg)
        with self._lock:
            local = self._jobs.get((user_id, name))
            if local is not None and local.state in ACTIVE_JOB_STATES:
                msg = (
                    f"{name!r} is already {local.state} ({local.describe()}); wait for it or "
                    "cancel it first."
                )
                raise JobRunningError(msg)
            job = TrainingJob(
                user_id, record.name, record.uid, owner=self.owner, config=self.config
            )
            self._jobs[(user_id, name)] = job
        try:
            self.store.jobs.put(
                JobRecord(
                    user_id, job.name, job.id, job.concept_uid, "queued", self.owner,
                    submitted=job.submitted,
                )
            )
            self.store.set_status(user_id, name, "training")
        except BaseException:
            with self._lock:
                self._jobs.pop((user_id, name), None)
            raise
        self._pending.put(job)
        return job

    def job(self, user_id: str, name: str) -> TrainingJob | None:
        """The latest job of this user's concept: this queue's own, or another replica's as the
        store shows it (a snapshot)."""
        with self._lock:
            local = self._jobs.get((user_id, name))
        record = self.store.jobs.get(user_id, name)
        if record is None or (local is not None and record.job_id == local.id):
            return local
        return TrainingJob.from_record(record)

    def active_jobs(self, user_id: str) -> list[TrainingJob]:
        """The user's queued and running jobs on every replica of the store, by concept name."""
        with self._lock:
            local = {job.id: job for job in self._jobs.values() if job.user_id == user_id}
        records = self.store.jobs.of_user(user_id)
        jobs = (local.get(r.job_id) or TrainingJob.from_record(r) for r in records)
        return [job for job in jobs if job.state in ACTIVE_JOB_STATES]

    def cancel(self, user_id: str, name: str, timeout: float | None = 60.0) -> bool:
        """Stop a queued or running job, of this queue or of another replica; True once it has
        stopped, False when none was active or it did not stop within `timeout`."""
        job = self.job(user_id, name)
        if job is None or job.finished.is_set():
            return False
        with self._lock:
            local = self._jobs.get((user_id, name)) is job
        if local:
            if self._cancel_local(job):
                return True
            return job.finished.wait(timeout)
        return self._cancel_elsewhere(job, timeout)

    def _cancel_local(self, job: TrainingJob) -> bool:
        """Set the job's cancel; True when it was still queued and is now finished."""
        job.cancel.set()
        if job.state == "queued":
            self._finish(job, "cancelled")  # never started: nothing to wait for
            return True
        return False

    def _cancel_elsewhere(self, job: TrainingJob, timeout: float | None) -> bool:
        if job.owner not in self._live_owners():
            self.fail_interrupted()  # its owner stopped: nothing is running it
            return True
        self.store.jobs.update(job.user_id, job.name, job.id, cancel_requested=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.store.jobs.get(job.user_id, job.name)
            if record is None or record.job_id != job.id or not record.active:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(CANCEL_POLL_SECONDS)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the workers; unfinished concepts stay `training` until a queue on the store marks
        them interrupted (failed), which a live one does on its next beat."""
        self._closing.set()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        for _ in self._threads:
            self._pending.put(None)
        for thread in [*self._threads, self._keeper]:
            thread.join(timeout)
        for worker in self.workers:
            worker.close()
        try:
            self.store.jobs.retire(self.owner)
        except StoreError as e:
            logger.warning("Could not retire training owner %s: %s", self.owner, e)

    # ---- running

    def _work(self, worker: TrainingWorker) -> None:
        worker.start(self._closing)
        while (job := self._pending.get()) is not None:
            try:
                self._process(job, worker)
            except Exception:  # noqa: BLE001 - the store failed while settling: keep serving
                logger.exception("Could not record the outcome of training %r", job.name)
                job.state = "failed"
                job.finished.set()

    def _process(self, job: TrainingJob, worker: TrainingWorker) -> None:
        if job.finished.is_set():
            return  # cancelled while queued
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return
        job.state, job.worker = "running", worker.name
        self._write(job, state="running", worker=worker.name)
        try:
            self._run(job, worker)
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

    def _run(self, job: TrainingJob, worker: TrainingWorker) -> None:
        record = self.store.get_concept(job.user_id, job.name)
        photos = self.store.photo_paths(job.user_id, job.name)
        others: list[Path] = []
        for other in self.store.list_concepts(job.user_id):
            if other.name != job.name:
                with contextlib.suppress(UnknownConceptError):  # forgotten meanwhile
                    others.extend(self.store.photo_paths(job.user_id, other.name))
        task = TrainingTask(
            name=job.name,
            photos=photos,
            out_dir=self.store.artifact_dir(job.user_id, job.name).parent,
            pool=[*self.store.pool_folders, *others],
            clip=self.store.clip,
            clip_cache=self.store.home / "clip-cache",
            config=job.config or self.config,
            description=record.description,
        )
        written = 0.0

        def report(event: TrainingEvent) -> None:
            nonlocal written
            job.progress = event
            if time.monotonic() - written >= PROGRESS_WRITE_SECONDS:
                written = time.monotonic()
                self._write(job, progress=event)

        folder = worker.train(task, report, job.cancel)
        if not self._settle(job, "ready", artifact_path=folder):
            shutil.rmtree(folder, ignore_errors=True)  # its concept was forgotten meanwhile
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the concept folder, if nothing else is in it

    def _write(self, job: TrainingJob, **changes: object) -> None:
        """Record a change of the job in the store; a store failure is logged, not raised (the
        job goes on, and its concept's status still tells its outcome)."""
        try:
            self.store.jobs.update(job.user_id, job.name, job.id, **changes)
        except StoreError as e:
            logger.warning("Could not record %s of training %r: %s", sorted(changes), job.name, e)

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
        closing = self._closing.is_set()
        if state == "cancelled" and not closing:
            self._settle(job, "taught")
        job.state = state
        if not (closing and state == "cancelled"):  # a closed queue's jobs are interrupted
            self._write(job, state=state, error=job.error)
        job.finished.set()
