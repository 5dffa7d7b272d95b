"""The training queue's edge cases: a concept forgotten (or replaced) while its job trains."""

from __future__ import annotations

from pathlib import Path

import pytest

import yollava_agent.tools.queue as queue_module
from tests.conftest import make_photo
from tests.unit_tests.test_training import FAST
from yollava_agent.memory import ConceptStore
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.training.negatives import ClipConfig

PHOTOS = [make_photo((200, 40 + 30 * i, 30)) for i in range(2)]


@pytest.fixture
def store(tmp_path: Path) -> ConceptStore:
    return ConceptStore(tmp_path / "home", clip=ClipConfig(model_name="tiny"))


def _queue_with(store: ConceptStore, monkeypatch, after_training) -> TrainingQueue:
    real_teach = queue_module.teach

    def teach_then(*args, **kwargs):
        folder = real_teach(*args, **kwargs)
        after_training()
        return folder

    monkeypatch.setattr(queue_module, "teach", teach_then)
    return TrainingQueue(store, "tiny", "cpu", "fp32", config=FAST)


def test_a_concept_forgotten_while_training_leaves_no_folder(store, monkeypatch) -> None:
    store.add_concept("alice", "bo", PHOTOS)
    queue = _queue_with(store, monkeypatch, lambda: store.forget("alice", "bo"))
    try:
        job = queue.submit("alice", "bo")
        assert job.finished.wait(120)
    finally:
        queue.close()
    assert not store.concept_dir("alice", "bo").exists()
    assert store.add_concept("alice", "bo", PHOTOS).status == "taught"


def test_a_job_never_settles_a_later_concept_of_the_same_name(store, monkeypatch) -> None:
    store.add_concept("alice", "bo", PHOTOS)

    def replace_bo() -> None:
        store.forget("alice", "bo")
        store.add_concept("alice", "bo", PHOTOS[:1], description="another bo")

    queue = _queue_with(store, monkeypatch, replace_bo)
    try:
        assert queue.submit("alice", "bo").finished.wait(120)
    finally:
        queue.close()
    record = store.get_concept("alice", "bo")
    assert (record.status, record.artifact_path, record.description) == ("taught", "", "another bo")
    assert not store.artifact_dir("alice", "bo").exists()
    assert len(store.photo_paths("alice", "bo")) == 1


def test_closing_leaves_unfinished_concepts_for_the_next_queue_to_fail(store, monkeypatch) -> None:
    store.add_concept("alice", "bo", PHOTOS)
    queue = TrainingQueue(store, "tiny", "cpu", "fp32", config=FAST)
    queue.close()
    store.set_status("alice", "bo", "training")  # as a process stopped mid-job leaves it
    restarted = TrainingQueue(store, "tiny", "cpu", "fp32", config=FAST)
    try:
        record = store.get_concept("alice", "bo")
        assert record.status == "failed" and "interrupted" in record.error
        assert restarted.submit("alice", "bo").finished.wait(120)
        assert store.get_concept("alice", "bo").status == "ready"
    finally:
        restarted.close()
