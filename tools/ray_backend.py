"""`RayBackend`: a `TrainingQueue`'s teach jobs on a Ray cluster, one job at a time per actor.

Each worker is a Ray actor (`TeachActor`) that loads the base model once, when it starts, and then
trains one concept at a time. It asks Ray for one GPU when the cluster has GPUs (and the device is
not `cpu`), else for `cpus_per_worker` CPUs; there are as many actors as the cluster holds, or
`num_workers` (several replicas on one cluster each take a share: actors beyond what the cluster
holds wait for resources, and their worker takes no job meanwhile). The queue keeps the store: an
actor gets a job as plain data (a `TrainingTask`: photo paths, pool folders, the recipe) and only
reads and writes files, so the data folder must be on storage that every node mounts at the same
path. The actor writes the artifact there, atomically as always (`Concept.save_pretrained`).

The queue's thread for an actor polls it for progress every `poll_seconds` and passes a cancel on
to it. An actor that dies mid-job (killed, out of memory, a lost node) fails that job only, with a
`WorkerLostError` that says so; the concept's previous version stays, and a new actor takes the
dead one's place for the next job. Actors belong to the process that made them and stop with it;
its jobs then count as interrupted, as its owner heartbeat stops too.

Ray is optional (`pip install yollava-agent[ray]`): only this module imports it, and nothing
imports this module unless asked for Ray. Not here: autoscaling, placement groups, or serving the
chat model on the cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from yollava_agent.errors import YoLLaVAError
from yollava_agent.loading import load_llava
from yollava_agent.training.negatives import ClipEmbedder
from yollava_agent.training.trainer import TrainingCancelled, TrainingEvent

from yollava_agent.tools.queue import TrainingTask, WorkerLostError, run_task

logger = logging.getLogger(__name__)

READY_POLL_SECONDS = 1.0
"""How often a worker waiting for its actor to start looks whether the queue is closing."""
SLOW_START_SECONDS = 120.0
"""After this long without its actor up, a worker warns that the cluster may be full."""
ACTOR_CALLS_AT_ONCE = 4
"""Threads of an actor: `train` runs in one while `progress` and `cancel` answer in others."""


class RayUnavailableError(YoLLaVAError, ConnectionError):
    """No Ray cluster at the address given, or none that can run the workers asked for."""


class TeachActor:
    """A Ray actor: one base model, one teach job at a time; progress and cancel on the side."""

    def __init__(self, model: str | None, device: str, dtype: str | None, threads: int) -> None:
        torch.set_num_threads(threads)
        self.runtime = load_llava(model, device, dtype)
        self._embedder: ClipEmbedder | None = None
        self._progress: TrainingEvent | None = None
        self._running: str | None = None
        self._cancels: dict[str, threading.Event] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        actor_id = ray.get_runtime_context().get_actor_id() or "?"
        self.name = (
            f"Ray actor {actor_id[:12]} (pid {os.getpid()} on {ray.util.get_node_ip_address()})"
        )

    def describe(self) -> str:
        """The actor in words; answering at all says it is up."""
        return self.name

    def running(self) -> str | None:
        """The id of the job it is training, or None when idle."""
        return self._running

    def progress(self) -> TrainingEvent | None:
        """The running job's latest event."""
        return self._progress

    def cancel(self, job_id: str) -> None:
        """Stop job `job_id`, whether it runs already or has not started yet."""
        with self._lock:
            self._cancelled.add(job_id)
            event = self._cancels.get(job_id)
        if event is not None:
            event.set()

    def train(self, task: TrainingTask, job_id: str) -> str | None:
        """Train `task`; the concept folder, or None when it was cancelled."""
        cancel = threading.Event()
        with self._lock:
            if job_id in self._cancelled:
                return None
            self._cancels[job_id], self._running, self._progress = cancel, job_id, None
        try:
            if self._embedder is None or self._embedder.config != task.clip:
                self._embedder = ClipEmbedder(task.clip)
            folder = run_task(self.runtime, task, self._embedder, self._report, cancel)
        except TrainingCancelled:
            return None
        finally:
            with self._lock:
                self._cancels.pop(job_id, None)
                self._cancelled.discard(job_id)
                self._running = None
        return str(folder)

    def _report(self, event: TrainingEvent) -> None:
        self._progress = event


class RayWorker:
    """One actor of a `RayBackend`, as its queue sees it: a queue thread trains through it."""

    def __init__(self, make_actor: Callable[[], Any], poll_seconds: float) -> None:
        self._make_actor = make_actor
        self._poll_seconds = poll_seconds
        self._closing = threading.Event()
        self.actor: Any = None
        """The Ray actor handle; None before it starts and after it died."""
        self.name = "a Ray actor (starting)"

    def start(self, closing: threading.Event) -> None:
        """Start the actor and wait until its model is loaded (or the queue closes)."""
        self._closing = closing
        try:
            self._alive_actor()
        except WorkerLostError as e:
            logger.warning("%s", e)  # the next job tries again, and fails with this if it must

    def _alive_actor(self) -> Any:
        """The actor, answering: the running one, or a new one in place of one that died."""
        if self.actor is not None:
            try:
                ray.get(self.actor.describe.remote())
                return self.actor
            except RayActorError:
                logger.warning("%s has stopped; starting another actor", self.name)
                self.actor = None
        actor = self._make_actor()
        ready = actor.describe.remote()
        waiting_since, warned = time.monotonic(), False
        while True:
            try:
                self.name = ray.get(ready, timeout=READY_POLL_SECONDS)
                break
            except GetTimeoutError:
                if not warned and time.monotonic() - waiting_since > SLOW_START_SECONDS:
                    warned = True
                    logger.warning(
                        "A Ray training actor is not up after %.0f s: the cluster may have no "
                        "free GPU or CPU for it (other replicas' actors?). Give each replica its "
                        "share with --ray-workers (RayBackend.num_workers).",
                        SLOW_START_SECONDS,
                    )
                if self._closing.is_set():
                    ray.kill(actor)
                    msg = "The queue closed before its Ray actor started."
                    raise WorkerLostError(msg) from None
            except RayActorError as e:
                msg = f"A Ray training actor could not start: {_first_line(e)}"
                raise WorkerLostError(msg) from e
        self.actor = actor
        return actor

    def train(
        self, task: TrainingTask, report: Callable[[TrainingEvent], None], cancel: threading.Event
    ) -> Path:
        actor = self._alive_actor()
        job_id = uuid.uuid4().hex
        result = actor.train.remote(task, job_id)
        cancel_sent = False
        while True:
            done, _ = ray.wait([result], timeout=self._poll_seconds)
            if cancel.is_set() and not cancel_sent:
                actor.cancel.remote(job_id)
                cancel_sent = True
            if done:
                break
            with contextlib.suppress(RayActorError, GetTimeoutError):  # the result will say
                event = ray.get(actor.progress.remote(), timeout=self._poll_seconds)
                if event is not None:
                    report(event)
        try:
            folder = ray.get(result)
        except RayActorError as e:
            lost, self.actor = self.name, None
            msg = (
                f"{lost} stopped while training {task.name!r} ({_first_line(e)}). Its previous "
                "version, if any, is kept; teach it again with no photos to retrain it."
            )
            raise WorkerLostError(msg) from e
        except RayTaskError as e:
            raise e.cause from e  # the actor's own exception, as the thread would have raised it
        if folder is None:
            msg = f"Training {task.name!r} was cancelled."
            raise TrainingCancelled(msg)
        return Path(folder)

    def close(self) -> None:
        """Stop the actor (a job still running on it is lost, as the queue is closing)."""
        if self.actor is not None:
            with contextlib.suppress(RayActorError):
                ray.kill(self.actor)
            self.actor = None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@dataclass
class RayBackend:
    """Teach jobs on a Ray cluster: `TrainingQueue(store, model, backend=RayBackend("auto"))`."""

    address: str | None = None
    """'auto' (a cluster started on this machine with `ray start --head`, or RAY_ADDRESS),
    'HOST:PORT' of a head node, or None: the cluster this process is connected to, else a new
    local one."""
    num_workers: int | None = None
    """Actors to start; None: as many as the cluster holds (one per GPU, else one per
    `cpus_per_worker` CPUs)."""
    cpus_per_worker: int = 1
    """CPUs each actor asks for (and its torch threads)."""
    poll_seconds: float = 0.5
    """How often a queue thread asks its actor for progress and passes on a cancel."""

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 1:
            msg = (
                f"RayBackend.num_workers must be at least 1 (or None for all), got "
                f"{self.num_workers}."
            )
            raise ValueError(msg)
        if self.cpus_per_worker < 1:
            msg = f"RayBackend.cpus_per_worker must be at least 1, got {self.cpus_per_worker}."
            raise ValueError(msg)
        if self.poll_seconds <= 0:
            msg = f"RayBackend.poll_seconds must be positive, got {self.poll_seconds}."
            raise ValueError(msg)

    def workers(self, model: str | None, device: str | None, dtype: str | None) -> list[RayWorker]:
        """One `RayWorker` per actor; the actors start (and load `model`) in the background."""
        self._connect()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpus = gpus > 0 and not str(device or "").startswith("cpu")
        if str(device or "").startswith("cuda") and not use_gpus:
            msg = (
                f"Device {device!r} was asked for, and the Ray cluster has no GPUs "
                f"({dict(resources)}). Add GPU nodes, or use --device cpu."
            )
            raise RayUnavailableError(msg)
        cpus = int(resources.get("CPU", 0))
        count = self.num_workers or (gpus if use_gpus else max(1, cpus // self.cpus_per_worker))
        actor_class = ray.remote(TeachActor).options(
            num_cpus=self.cpus_per_worker,
            num_gpus=1 if use_gpus else 0,
            max_concurrency=ACTOR_CALLS_AT_ONCE,
        )
        actor_device = "cuda" if use_gpus else "cpu"  # Ray shows each actor only its own GPU
        logger.info(
            "Training on Ray: %d actor(s) of %s on %s (cluster: %s)",
            count, model, actor_device, dict(resources),
        )

        def make_actor() -> Any:
            return actor_class.remote(model, actor_device, dtype, self.cpus_per_worker)

        return [RayWorker(make_actor, self.poll_seconds) for _ in range(count)]

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            msg = (
                f"No Ray cluster could be reached at {self.address!r} ({e}). Start one with `ray "
                "start --head` (then use address 'auto', or HOST:PORT of its head), or train in "
                "this process (no Ray address)."
            )
            raise RayUnavailableError(msg) from e
