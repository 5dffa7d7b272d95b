"""`ConceptStore` on a real Chroma server: `chroma run` from the venv, on 127.0.0.1 only.

Each test starts its own server (the `chroma_server` fixture of `tests/conftest.py`, under a second
to be ready here) on a free port with its data in a temporary folder, and the fixture always
terminates it. The store's photos stay in the store's own data folder; the records live on the
server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from yollava_agent.memory import ConceptStore, StoreUnavailableError

from tests.conftest import HOST, ChromaServer, free_port, make_photo
from yollava_agent.training.negatives import ClipConfig

TINY = ClipConfig(model_name="tiny")
REDS = [(200 + 5 * i, 30 + 3 * i, 30) for i in range(3)]


def _photos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(REDS):
        paths.append(folder / f"bo{i}.png")
        make_photo(colour).save(paths[-1])
    return paths


def test_a_store_on_a_chroma_server(
    chroma_server: Callable[..., ChromaServer], tmp_path: Path
) -> None:
    server = chroma_server()
    photos = _photos(tmp_path / "in")
    store = ConceptStore(home=tmp_path / "a", host=HOST, port=server.port, clip=TINY)
    record = store.add_concept("alice", "bo", photos, description="my cat")
    found = store.recognize("alice", photos[1])
    assert [r.name for r in found] == ["bo"] and found[0].score > 0.999
    assert found[0].threshold == record.threshold
    fact = store.remember("alice", "bo", "bo likes tuna")
    assert not (tmp_path / "a" / "chroma").exists()  # no embedded database beside the server
    assert (server.path / "chroma.sqlite3").is_file()  # the records are on the server
    assert all(
        p.is_file() and p.is_relative_to(tmp_path / "a") for p in store.photo_paths("alice", "bo")
    )

    # Another store object (another app replica, say) on the same server and the same shared
    # data folder sees all of it.
    other = ConceptStore(home=tmp_path / "a", host=HOST, port=server.port, clip=TINY)
    assert other.get_concept("alice", "bo") == record
    assert other.list_facts("alice", "bo") == [fact]
    assert [r.name for r in other.recognize("alice", photos[2])] == ["bo"]
    assert other.list_concepts("bob") == [] and other.recognize("bob", photos[2]) == []
    other.forget_fact("alice", "bo", fact.id)
    assert store.list_facts("alice", "bo") == []


def test_no_server_at_that_port_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", f"{HOST},localhost")
    port = free_port()  # bound and released: nothing listens there
    with pytest.raises(StoreUnavailableError) as raised:
        ConceptStore(home=tmp_path / "home", host=HOST, port=port, clip=TINY)
    message = str(raised.value)
    assert f"The Chroma server at {HOST}:{port} is not reachable" in message
    assert f"chroma run --host {HOST} --port {port}" in message  # how to start it
    assert "embedded store" in message and "Nothing was changed" in message
    assert isinstance(raised.value, ConnectionError)
    assert not (tmp_path / "home").exists()  # nothing written for a store that never opened


def test_a_server_that_goes_down_mid_session(
    chroma_server: Callable[..., ChromaServer], tmp_path: Path
) -> None:
    server = chroma_server()
    photos = _photos(tmp_path / "in")
    store = ConceptStore(home=tmp_path / "home", host=HOST, port=server.port, clip=TINY)
    record = store.add_concept("alice", "bo", photos)
    store.remember("alice", "bo", "bo likes tuna")
    files_before = sorted(p for p in (tmp_path / "home").rglob("*"))

    server.stop()
    where = f"The Chroma server at {HOST}:{server.port} is not reachable"
    with pytest.raises(StoreUnavailableError, match=where):
        store.list_concepts("alice")
    with pytest.raises(StoreUnavailableError, match=where):
        store.recognize("alice", photos[0])
    with pytest.raises(StoreUnavailableError, match=where):
        store.remember("alice", "bo", "said while the server was down")
    with pytest.raises(
        StoreUnavailableError, match=f"chroma run --host {HOST} --port {server.port}"
    ):
        store.add_concept("alice", "kiwi", photos[:1])
    with pytest.raises(StoreUnavailableError, match=where):
        store.forget("alice", "bo")
    assert (
        sorted(p for p in (tmp_path / "home").rglob("*")) == files_before
    )  # nothing written or removed

    # Back up on the same data and port: everything stored before is there, and the same store
    # object carries on.
    chroma_server(path=server.path, port=server.port)
    assert store.get_concept("alice", "bo") == record
    assert [f.text for f in store.list_facts("alice", "bo")] == ["bo likes tuna"]
    assert [r.name for r in store.recognize("alice", photos[0])] == ["bo"]
    assert all(p.is_file() for p in store.photo_paths("alice", "bo"))
