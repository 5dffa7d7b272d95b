"""Several app replicas on one store: a real `chroma run` server on 127.0.0.1 and one shared data
folder (the concepts' photos, key files and artifacts live there, so replicas must share it).

Replicas A and B are two app contexts in this process, each with its own store client and its own
`TrainingQueue` (its own owner id and heartbeat), called through the app's handlers. Replica C is
another process that is killed without a goodbye (SIGKILL) in the middle of a job. Training is
held at its first step by the `gate` fixture where a job must stay running (in-process queues).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import HANG_SECONDS, HOST, ChromaServer, Gate, make_photo
from tests.ui.conftest import make_context
from yollava_agent.images import load_image
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.training.negatives import ClipConfig
from yollava_agent.ui import AppContext, respond, run_command, training_progress
from yollava_agent.ui.cli import add_ui_arguments
from yollava_agent.ui.cli import main as cli_main
from yollava_agent.ui.launch import make_context as app_context

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT = HANG_SECONDS
T = TypeVar("T")

# Replica C: another process on the same server and data folder, training bob's rex for far
# longer than the test lasts.
REPLICA_C = """
import sys, time
from yollava_agent.memory import ConceptStore
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig

home, port, *photos = sys.argv[1:]
store = ConceptStore(home, host="127.0.0.1", port=int(port), clip=ClipConfig(model_name="tiny"))
store.add_concept("bob", "rex", photos)
endless = TrainingConfig(epochs=100000, batch_size=4, warmup_epochs=1, turns_per_positive=4,
                         attribute_answer_tokens=4)
queue = TrainingQueue(store, "tiny", "cpu", "fp32", config=endless, heartbeat_seconds=0.5,
                      stale_seconds=2.0)
queue.submit("bob", "rex").finished.wait()
"""


def photo_files(folder: Path, red: bool = True) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        path = folder / f"{i}.png"
        make_photo((220, 40 + 25 * i, 30) if red else (30, 60 + 20 * i, 220)).save(path)
        paths.append(str(path))
    return paths


def wait_for(check: Callable[[], T | None], what: str, timeout: float = JOB_TIMEOUT) -> T:
    """The first truthy value of `check`; fails naming `what` after `timeout` (a hang guard)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.05)
    return value


@dataclass
class Replicas:
    """App replicas on one Chroma server and one shared data folder."""

    server: ChromaServer
    home: Path
    started: list[AppContext] = field(default_factory=list)

    def start(self, **queue_options: Any) -> AppContext:
        replica = make_context(self.home, chroma_port=self.server.port, **queue_options)
        self.started.append(replica)
        return replica


@pytest.fixture
def replicas(chroma_server: Callable[..., ChromaServer], tmp_path: Path) -> Iterator[Replicas]:
    """Replicas on a fresh server; every one is closed when the test ends."""
    group = Replicas(chroma_server(), tmp_path / "shared-data")
    yield group
    for replica in group.started:
        replica.queue.close()


def test_a_concept_taught_on_one_replica_is_recognised_and_chatted_with_on_another(
    replicas: Replicas, gate: Gate, tmp_path: Path
) -> None:
    a, b = replicas.start(), replicas.start()
    photos = photo_files(tmp_path / "bo")
    reply = run_command(a, "alice", "/teach bo my red mug", photos)
    assert reply.startswith("Taught 'bo' from 3 photos")
    assert gate.started.wait(JOB_TIMEOUT)

    # At once on B: recognised in a photo (the instant tier), with its description.
    found = StoreConceptSource(b.store, "alice").concepts_for("", [load_image(photos[1])])
    assert [(c.name, c.description, c.concept) for c in found] == [("bo", "my red mug", None)]
    # B shows A's job and its progress, read from the store.

    def shown_on_b() -> str | None:
        text = training_progress(b, "alice")
        return text if "<progress" in text else None

    progress = wait_for(shown_on_b, "A's progress reaching B")
    assert progress.startswith("**bo** <progress value='1' max=") and "epoch 1/3" in progress
    status = run_command(b, "alice", "/status bo", [])
    assert "'bo' is training" in status and "Progress: training 'bo': epoch 1/3" in status
    assert training_progress(b, "bob") == "No training running."

    # Restarting B (its queue goes and a new one starts on the store) leaves A's job running.
    b.queue.close()
    b = replicas.start()
    job = b.store.jobs.get("alice", "bo")
    assert (job.state, job.owner) == ("running", a.queue.owner)
    assert b.store.get_concept("alice", "bo").status == "training"

    gate.open()
    assert a.queue.job("alice", "bo").finished.wait(JOB_TIMEOUT)
    assert b.store.get_concept("alice", "bo").status == "ready"
    assert b.store.jobs.get("alice", "bo").state == "done"
    # B chats about bo with a photo, on bo's trained tokens.
    *_, final = respond(b, "alice", {"text": "Is bo in this photo?", "files": [photos[2]]}, [])
    assert final[-1]["role"] == "assistant"
    assert list(b.chat_model.runtime.injected) == ["bo"]
    assert "bo" not in run_command(b, "bob", "/concepts", []).replace("bob", "")


def test_only_the_jobs_of_a_replica_that_stopped_are_failed(
    replicas: Replicas, gate: Gate, tmp_path: Path
) -> None:
    a = replicas.start(heartbeat_seconds=0.5, stale_seconds=2.0)
    run_command(a, "alice", "/teach bo", photo_files(tmp_path / "bo"))
    assert gate.started.wait(JOB_TIMEOUT)
    where = [str(replicas.home), str(replicas.server.port)]
    c = subprocess.Popen(
        [sys.executable, "-c", REPLICA_C, *where, *photo_files(tmp_path / "rex", red=False)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        running = wait_for(
            lambda: (job := a.store.jobs.get("bob", "rex")) and job.progress and job,
            "replica C's job running",
        )
        assert running.state == "running" and running.owner not in (a.queue.owner, "")
        # While C is alive, A's beats leave its job alone, well past the stale limit.
        time.sleep(3 * a.queue.stale_seconds)
        assert a.store.jobs.get("bob", "rex").state == "running"
        assert a.store.get_concept("bob", "rex").status == "training"

        os.kill(c.pid, signal.SIGKILL)
        c.wait(timeout=30)
        failed = wait_for(
            lambda: (r := a.store.get_concept("bob", "rex")).status == "failed" and r,
            "A failing the job of stopped replica C",
        )
    finally:
        if c.poll() is None:
            c.kill()
        output = c.communicate(timeout=30)[0]
    assert "interrupted before it finished" in failed.error, output
    assert a.store.jobs.get("bob", "rex").state == "failed"
    # A's own job was never touched, and rex trains again on A from its stored photos.
    assert a.store.get_concept("alice", "bo").status == "training"
    assert a.store.jobs.get("alice", "bo").state == "running"
    assert a.queue.submit("bob", "rex").state == "queued"  # behind bo, which the gate holds
    gate.open()
    for user, name in (("alice", "bo"), ("bob", "rex")):
        assert a.queue.job(user, name).finished.wait(JOB_TIMEOUT)
        assert a.store.get_concept(user, name).status == "ready"


def test_forgetting_on_one_replica_stops_the_job_another_runs(
    replicas: Replicas, gate: Gate, tmp_path: Path
) -> None:
    a, b = replicas.start(heartbeat_seconds=0.5, stale_seconds=2.0), replicas.start()
    run_command(a, "alice", "/teach bo", photo_files(tmp_path / "bo"))
    assert gate.started.wait(JOB_TIMEOUT)
    job = a.queue.job("alice", "bo")

    # B asks A's job to stop through its record; A stops it on its next beat, then B forgets.
    forgot = run_command(b, "alice", "/forget bo", [])
    assert forgot.startswith("Forgot 'bo'") and "Its training was stopped." in forgot
    assert job.finished.is_set() and job.state == "cancelled"
    assert a.store.list_concepts("alice") == [] and b.store.jobs.get("alice", "bo") is None
    assert not a.store.concept_dir("alice", "bo").exists()


def test_the_command_line_opens_the_store_on_a_chroma_server(
    chroma_server: Callable[..., ChromaServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = chroma_server()
    data = tmp_path / "shared-data"
    tiny = ClipConfig(model_name="tiny")
    ConceptStore(data, host=HOST, port=server.port, clip=tiny).add_concept(
        "alice", "bo", photo_files(tmp_path / "bo")
    )
    options = ["--data", str(data), "--chroma-host", HOST, "--chroma-port", str(server.port)]
    clip = ["--clip-model", "tiny", "--clip-pretrained", "none"]
    assert cli_main(["concepts", "--user", "alice", *options, *clip]) == 0
    assert capsys.readouterr().out.startswith("bo\ttaught\t3 photos\t0 facts")
    assert not (data / "chroma").exists()  # no embedded database beside the server

    parser = argparse.ArgumentParser()
    add_ui_arguments(parser)
    ctx = app_context(parser.parse_args(["--model", "tiny", *options, *clip]))
    try:
        assert [r.name for r in ctx.store.list_concepts("alice")] == ["bo"]
        assert ctx.queue.workers[0].name.startswith("a thread of pid")  # no --ray-address
    finally:
        ctx.queue.close()
