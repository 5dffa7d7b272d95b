"""Teach jobs on a Ray cluster: `yollava ui --ray-address` on a local cluster this module starts.

One cluster for the whole module (`ray.init` with 2 CPUs and a temporary folder, stopped at the
end), bound to 127.0.0.1, and one app built by the command line's `make_context` with
`--ray-address`: its queue has two `TeachActor`s, each loading the tiny model once. Jobs that must
stay running use an endless recipe (`queue.config` is read at submission), and are cancelled or
killed; others use short ones. Ray must be installed (`make test` installs the `ray` extra).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Ray gives a node the machine's network address unless told that the cluster is this machine
# alone; then every Ray server binds the loopback address. Ray reads this when it is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pytest  # noqa: E402
import ray  # noqa: E402

from tests.conftest import HANG_SECONDS  # noqa: E402
from tests.ui.conftest import QUICK  # noqa: E402
from tests.ui.test_replicas import photo_files, wait_for  # noqa: E402
from yollava_agent.concept import Concept  # noqa: E402
from yollava_agent.memory.jobs import JobRecord  # noqa: E402
from yollava_agent.tools.ray_backend import RayWorker  # noqa: E402
from yollava_agent.training.config import TrainingConfig  # noqa: E402
from yollava_agent.ui import AppContext, run_command, training_progress  # noqa: E402
from yollava_agent.ui.cli import add_ui_arguments  # noqa: E402
from yollava_agent.ui.launch import make_context  # noqa: E402

ENDLESS = TrainingConfig(
    epochs=100000, batch_size=4, warmup_epochs=1, turns_per_positive=4, attribute_answer_tokens=4
)
SECONDS_LONG = dataclasses.replace(ENDLESS, epochs=40)
"""Long enough (~0.1 s an epoch here) for two jobs to be seen training together; QUICK is not."""
JOB_TIMEOUT = HANG_SECONDS


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local two-CPU Ray cluster for this module, listening on 127.0.0.1 only."""
    # Short: Ray's socket paths live under it, and a Unix socket path has at most 107 bytes.
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def app(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    """The app as `yollava ui --ray-address ADDRESS` builds it, on the tiny model and tiny CLIP."""
    parser = argparse.ArgumentParser()
    add_ui_arguments(parser)
    data = tmp_path_factory.mktemp("ray-app") / "data"
    args = parser.parse_args(
        ["--ray-address", ray_address, "--data", str(data), "--model", "tiny", "--device", "cpu",
         "--clip-model", "tiny", "--clip-pretrained", "none", "--max-tokens", "6"]
    )
    context = make_context(args)
    try:
        yield context
    finally:
        context.queue.close()


@pytest.fixture
def queue_config(app: AppContext) -> Iterator[None]:
    """Each test starts with the short recipe, whatever the one before set."""
    app.queue.config = QUICK
    yield
    app.queue.config = QUICK


def _ready_workers(app: AppContext) -> list[RayWorker]:
    """The queue's actors once all have loaded their model."""
    workers = app.queue.workers
    assert all(isinstance(w, RayWorker) for w in workers)
    wait_for(lambda: all(w.actor is not None for w in workers), "both actors starting", JOB_TIMEOUT)
    return workers  # type: ignore[return-value]


def _running(app: AppContext, user: str, name: str) -> JobRecord:
    """The job's record once its actor has reported progress."""
    return wait_for(
        lambda: (r := app.store.jobs.get(user, name)) is not None and r.progress is not None and r,
        f"{user}'s {name!r} training on an actor",
        JOB_TIMEOUT,
    )


def test_two_users_jobs_train_at_once_on_two_actors(
    app: AppContext, queue_config: None, tmp_path: Path
) -> None:
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    workers = _ready_workers(app)
    app.queue.config = SECONDS_LONG
    assert len(workers) == 2 and len({w.name for w in workers}) == 2
    assert all(w.name.startswith("Ray actor ") and "on 127.0.0.1" in w.name for w in workers)

    bo_photos, rex_photos = photo_files(tmp_path / "bo"), photo_files(tmp_path / "rex", red=False)
    assert run_command(app, "alice", "/teach bo", bo_photos).startswith("Taught")
    assert run_command(app, "bob", "/teach rex", rex_photos).startswith("Taught")

    def both_running() -> tuple[JobRecord, JobRecord] | None:
        bo, rex = app.store.jobs.get("alice", "bo"), app.store.jobs.get("bob", "rex")
        together = all(r.state == "running" and r.progress is not None for r in (bo, rex))
        return (bo, rex) if together else None

    bo, rex = wait_for(both_running, "both jobs running at once", JOB_TIMEOUT)
    assert bo.worker != rex.worker and {bo.worker, rex.worker} == {w.name for w in workers}
    # Each user's progress line shows their own job only.
    alice, bob = training_progress(app, "alice"), training_progress(app, "bob")
    assert "**bo**" in alice and "**rex**" not in alice
    assert "**rex**" in bob and "**bo**" not in bob

    for user, name in (("alice", "bo"), ("bob", "rex")):
        assert app.queue.job(user, name).finished.wait(JOB_TIMEOUT)
        record = app.store.get_concept(user, name)
        assert record.status == "ready", record.error
        assert Concept.from_pretrained(record.artifact_path).version == 1
        assert app.store.jobs.get(user, name).state == "done"


def test_cancel_reaches_the_actor(app: AppContext, queue_config: None, tmp_path: Path) -> None:
    workers = _ready_workers(app)
    app.queue.config = ENDLESS
    run_command(app, "carol", "/teach kit", photo_files(tmp_path / "kit"))
    running = _running(app, "carol", "kit")
    worker = next(w for w in workers if w.name == running.worker)
    assert ray.get(worker.actor.running.remote()) is not None

    assert app.queue.cancel("carol", "kit", timeout=JOB_TIMEOUT) is True
    assert app.queue.job("carol", "kit").state == "cancelled"
    assert app.store.jobs.get("carol", "kit").state == "cancelled"
    assert app.store.get_concept("carol", "kit").status == "taught"  # can be taught again
    # The actor stopped training and stays up for the next job.
    assert ray.get(worker.actor.running.remote()) is None
    assert ray.get(worker.actor.describe.remote()) == running.worker


def test_a_killed_actor_fails_its_job_keeps_the_previous_version_and_is_replaced(
    app: AppContext, queue_config: None, tmp_path: Path
) -> None:
    workers = _ready_workers(app)
    run_command(app, "dan", "/teach max", photo_files(tmp_path / "max"))
    assert app.queue.job("dan", "max").finished.wait(JOB_TIMEOUT)
    first = app.store.get_concept("dan", "max")
    assert first.status == "ready", first.error
    weights = (Path(first.artifact_path) / "concept.safetensors").read_bytes()

    app.queue.config = ENDLESS
    job = app.queue.submit("dan", "max")
    running = _running(app, "dan", "max")
    killed = next(w for w in workers if w.name == running.worker)
    ray.kill(killed.actor)

    assert job.finished.wait(JOB_TIMEOUT)
    assert job.state == "failed"
    assert job.error.startswith(f"WorkerLostError: {running.worker} stopped while training 'max'")
    assert "previous version, if any, is kept" in job.error
    record = app.store.get_concept("dan", "max")
    assert (record.status, record.artifact_path) == ("failed", first.artifact_path)
    assert record.error == job.error and app.store.jobs.get("dan", "max").state == "failed"
    assert Concept.from_pretrained(record.artifact_path).version == 1
    assert (Path(record.artifact_path) / "concept.safetensors").read_bytes() == weights
    assert not list(app.store.concept_dir("dan", "max").glob(".max.new-*"))  # no half-written one

    # Both threads take a job: the killed actor's thread starts a new actor for its own.
    app.queue.config = QUICK
    app.queue.submit("dan", "max")
    run_command(app, "erin", "/teach pip", photo_files(tmp_path / "pip", red=False))
    for user, name in (("dan", "max"), ("erin", "pip")):
        assert app.queue.job(user, name).finished.wait(JOB_TIMEOUT)
        assert app.store.get_concept(user, name).status == "ready"
    assert Concept.from_pretrained(app.store.get_concept("dan", "max").artifact_path).version == 2
    assert killed.actor is not None and killed.name not in (running.worker, "")
    assert ray.get(killed.actor.describe.remote()) == killed.name
