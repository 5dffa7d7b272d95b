"""The concept tools end to end on the tiny models: teach, recognise, train, remember, forget.

Training runs in a real `TrainingQueue` on the tiny LLaVA with the FAST recipe. Tests that need a
job to stay running hold it in a gate (`tests/conftest.py`): `teach` (as the queue calls it) is
wrapped so that the first training event waits until the test opens the gate or the job is
cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from tests.conftest import HANG_SECONDS, make_photo, run_python
from tests.unit_tests.test_training import FAST
from yollava_agent.memory import ConceptStore, StoreUnavailableError
from yollava_agent.tools import (
    JobRunningError,
    ListConceptsTool,
    TeachConceptTool,
    TrainingQueue,
    concept_tools,
)
from yollava_agent.tools.queue import INTERRUPTED
from yollava_agent.training.negatives import ClipConfig

ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT = HANG_SECONDS


@pytest.fixture
def store(tmp_path: Path) -> ConceptStore:
    return ConceptStore(tmp_path / "home", clip=ClipConfig(model_name="tiny"))


@pytest.fixture
def queue(store: ConceptStore) -> Iterator[TrainingQueue]:
    training = TrainingQueue(store, model="tiny", device="cpu", dtype="fp32", config=FAST)
    yield training
    training.close()


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, list[str]]:
    """Photo files: three of a red 'bo', three of a blue 'rex', three of a green 'zed'."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    colors = {
        "bo": [(220, 40 + 25 * i, 30) for i in range(3)],
        "rex": [(30, 60 + 20 * i, 220) for i in range(3)],
        "zed": [(30, 220, 40 + 20 * i) for i in range(3)],
    }
    found: dict[str, list[str]] = {}
    for name, shades in colors.items():
        for i, color in enumerate(shades):
            path = folder / f"{name}{i}.png"
            make_photo(color).save(path)
            found.setdefault(name, []).append(str(path))
    return found


def tools_of(store: ConceptStore, queue: TrainingQueue, user_id: str) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in concept_tools(store, queue, user_id)}


def wait_for(queue: TrainingQueue, user_id: str, name: str) -> str:
    job = queue.job(user_id, name)
    assert job is not None, f"no job for {name!r}"
    assert job.finished.wait(JOB_TIMEOUT), f"training {name!r} did not finish: {job.describe()}"
    return job.state


def user_records(store: ConceptStore, user_id: str) -> dict[str, list[str]]:
    """Ids of every record of a user, per collection."""
    return {
        "concepts": store.concepts.get(where={"user_id": user_id})["ids"],
        "photos": store.photos.get(where={"user_id": user_id})["ids"],
        "facts": store.facts.get(where={"user_id": user_id})["ids"],
    }


def user_files(store: ConceptStore, user_id: str) -> list[Path]:
    concepts = store.concept_dir(user_id, "x").parent
    return sorted(concepts.rglob("*")) if concepts.exists() else []


# ---- the life of a concept


def test_teach_recognise_train_remember_list_forget(store, queue, photos, gate) -> None:
    tools = tools_of(store, queue, "alice")

    taught = tools["teach_concept"].invoke(
        {"name": "bo", "photo_paths": photos["bo"], "description": "a red ceramic mug"}
    )
    assert taught == (
        "Taught 'bo' from 3 photos: I recognise it in photos now, and training of its own tokens "
        "has started (concept_status shows progress)."
    )
    assert gate.started.wait(JOB_TIMEOUT)

    # The instant tier: recognised while training is still held at its first step.
    seen = tools["recognize_concepts"].invoke({"photo_path": photos["bo"][1]})
    assert seen.startswith("In this photo I recognise 'bo' (similarity 1.00, threshold ")
    assert tools["recognize_concepts"].invoke({"photo_path": photos["zed"][0]}) == (
        "None of your concepts is in this photo."
    )
    status = tools["concept_status"].invoke({"name": "bo"})
    assert status.startswith(
        "'bo' is training (recognisable in photos now, its own tokens in training)."
    )
    assert "Progress: training 'bo': epoch 1/4, step 1/" in status
    assert status.endswith("It has 3 photos and 0 remembered facts.")

    gate.open()
    assert wait_for(queue, "alice", "bo") == "done"
    status = tools["concept_status"].invoke({"name": "bo"})
    assert status.startswith("'bo' is ready (trained, so the chat model knows it by its own tokens")
    record = store.get_concept("alice", "bo")
    assert record.status == "ready" and (Path(record.artifact_path) / "concept.json").is_file()

    remembered = tools["remember_fact"].invoke(
        {"concept": "bo", "fact": " bo was a gift from Ana "}
    )
    fact = store.list_facts("alice", "bo")[0]
    assert fact.text == "bo was a gift from Ana"
    assert remembered == f"Remembered about 'bo': 'bo was a gift from Ana' (fact id {fact.id})."

    assert tools["list_concepts"].invoke({}) == "You have 1 concept:\n- bo: ready, 3 photos, 1 fact"

    forgotten = tools["forget_concept"].invoke({"name": "bo"})
    assert forgotten == "Forgot 'bo': its 3 photos, 1 fact and trained tokens are deleted."
    assert user_records(store, "alice") == {"concepts": [], "photos": [], "facts": []}
    assert user_files(store, "alice") == []
    assert tools["list_concepts"].invoke({}) == (
        "You have no concepts yet; teach one with teach_concept and a few photos."
    )
    assert tools["recognize_concepts"].invoke({"photo_path": photos["bo"][1]}) == (
        "None of your concepts is in this photo."
    )


def test_a_tool_call_returns_a_message_with_the_data_as_artifact(store, queue, photos) -> None:
    tools = tools_of(store, queue, "alice")
    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    wait_for(queue, "alice", "bo")
    args = {"photo_path": photos["bo"][0]}
    message = tools["recognize_concepts"].invoke(
        {"type": "tool_call", "id": "call_1", "name": "recognize_concepts", "args": args}
    )
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert message.tool_call_id == "call_1"
    assert [hit["name"] for hit in message.artifact] == ["bo"]
    assert message.artifact[0]["score"] >= message.artifact[0]["threshold"]

    listed = tools["list_concepts"].invoke(
        {"type": "tool_call", "id": "call_2", "name": "list_concepts", "args": {}}
    )
    assert listed.artifact == [
        {**{k: listed.artifact[0][k] for k in ("threshold", "updated", "description", "error")},
         "name": "bo", "status": "ready", "photo_count": 3, "facts": 0}
    ]


# ---- one user's tools never reach another user's concepts


def test_another_users_tools_cannot_see_use_or_change_a_concept(store, queue, photos) -> None:
    alice = tools_of(store, queue, "alice")
    bob = tools_of(store, queue, "bob")
    alice["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    wait_for(queue, "alice", "bo")
    alice["remember_fact"].invoke({"concept": "bo", "fact": "bo was a gift from Ana"})
    def alices() -> tuple[Any, ...]:
        return store.get_concept("alice", "bo"), user_records(store, "alice"), user_files(store, "alice")

    before = alices()

    assert all("user_id" not in tool.args for tool in bob.values())
    assert bob["list_concepts"].invoke({}) == (
        "You have no concepts yet; teach one with teach_concept and a few photos."
    )
    unknown = "Unknown concept 'bo': your concepts are none yet."
    assert bob["concept_status"].invoke({"name": "bo"}) == unknown
    assert bob["remember_fact"].invoke({"concept": "bo", "fact": "bo is mine"}) == (
        f"{unknown} Nothing was remembered."
    )
    assert bob["forget_concept"].invoke({"name": "bo"}) == unknown
    assert bob["recognize_concepts"].invoke({"photo_path": photos["bo"][0]}) == (
        "None of your concepts is in this photo."
    )
    stored = str(store.photo_paths("alice", "bo")[0])
    refused = bob["teach_concept"].invoke({"name": "mine", "photo_paths": [stored]})
    assert refused == (
        f"Photo {stored!r} is inside the concept store's own folders, which tools do not read. "
        "Send the original photo the user attached."
    )

    # Bob may have his own 'bo'; alice's is untouched by it and by its removal.
    assert bob["teach_concept"].invoke({"name": "bo", "photo_paths": photos["zed"]}).startswith(
        "Taught 'bo' from 3 photos:"
    )
    wait_for(queue, "bob", "bo")
    assert bob["recognize_concepts"].invoke({"photo_path": photos["bo"][0]}) == (
        "None of your concepts is in this photo."
    )
    assert bob["forget_concept"].invoke({"name": "bo"}) == (
        "Forgot 'bo': its 3 photos, 0 facts and trained tokens are deleted."
    )
    assert alices() == before
    assert alice["list_concepts"].invoke({}) == "You have 1 concept:\n- bo: ready, 3 photos, 1 fact"


# ---- errors that come back as messages


def test_a_duplicate_name_or_a_running_job_changes_nothing(store, queue, photos, gate) -> None:
    tools = tools_of(store, queue, "alice")
    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    assert gate.started.wait(JOB_TIMEOUT)

    running = tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["rex"]})
    assert running.startswith("'bo' is already being trained (training 'bo': epoch 1/4, step 1/")
    assert running.endswith(
        "Nothing was changed: wait for it to finish (concept_status), or forget 'bo' first."
    )
    with pytest.raises(JobRunningError, match=r"'bo' is already running \(training 'bo': epoch 1"):
        queue.submit("alice", "bo")
    assert store.get_concept("alice", "bo").photo_count == 3

    gate.open()
    assert wait_for(queue, "alice", "bo") == "done"
    duplicate = tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["rex"]})
    assert duplicate == (
        "You already have a concept named 'bo' (ready). Nothing was changed: choose another name, "
        "or forget 'bo' first to teach it anew."
    )
    # Asking to retry a concept whose training is done is a duplicate too.
    assert tools["teach_concept"].invoke({"name": "bo", "photo_paths": []}) == duplicate
    record = store.get_concept("alice", "bo")
    assert (record.status, record.photo_count) == ("ready", 3)
    assert len(store.photo_paths("alice", "bo")) == 3


def test_bad_inputs_come_back_as_messages_and_store_nothing(store, queue, photos, tmp_path) -> None:
    tools = tools_of(store, queue, "alice")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list")
    missing = str(tmp_path / "nope.png")

    def teach(**args: Any) -> str:
        return tools["teach_concept"].invoke(args)

    assert teach(name="bo x", photo_paths=photos["bo"]) == (
        "Concept name 'bo x' is not a safe identifier: use letters, digits, '_' and '-', starting "
        "with a letter or digit (no spaces, path separators, '<', '>' or control characters). "
        "Nothing was stored."
    )
    assert teach(name="../bo", photo_paths=photos["bo"]).startswith(
        "Concept name '../bo' is not a safe identifier"
    )
    assert teach(name="bo", photo_paths=[]) == (
        "Teaching 'bo' needs photos of it, and photo_paths is empty. Nothing was stored: ask the "
        "user for 3 to 10 photos and call teach_concept again."
    )
    assert teach(name="bo", photo_paths=[*photos["bo"], missing]) == (
        f"Could not teach 'bo': Image file {missing!r} does not exist or is not a file. Nothing "
        "was stored."
    )
    assert teach(name="bo", photo_paths=[*photos["bo"][:2], str(not_an_image)]) == (
        f"Could not teach 'bo': {str(not_an_image)!r} is not an image PIL can read; send a JPEG, "
        "PNG, WebP, GIF or BMP photo. Nothing was stored."
    )
    assert teach(name="bo") == (
        "Invalid arguments (photo_paths: Field required). Call the tool again with arguments "
        "matching its schema."
    )
    assert teach(name="bo", photo_paths="bo0.png").startswith("Invalid arguments (photo_paths: ")
    assert user_records(store, "alice") == {"concepts": [], "photos": [], "facts": []}
    assert user_files(store, "alice") == []
    assert queue.job("alice", "bo") is None

    unknown = "Unknown concept 'zed': your concepts are none yet."
    assert tools["concept_status"].invoke({"name": "zed"}) == unknown
    assert tools["forget_concept"].invoke({"name": "zed"}) == unknown
    assert tools["remember_fact"].invoke({"concept": "zed", "fact": "zed is green"}) == (
        f"{unknown} Nothing was remembered."
    )
    assert tools["recognize_concepts"].invoke({"photo_path": missing}) == (
        f"Could not look at the photo: Image file {missing!r} does not exist or is not a file."
    )
    assert tools["recognize_concepts"].invoke({"photo_path": "https://example.com/bo.jpg"}) == (
        "Could not look at the photo: Image URL 'https://example.com/bo.jpg' is remote; remote "
        "images are not fetched. Download it and send a local path or a base64 data URL instead."
    )

    # As a tool call, the message is the result, marked as an error.
    call = {"type": "tool_call", "id": "call_9", "name": "concept_status", "args": {"name": "zed"}}
    message = tools["concept_status"].invoke(call)
    assert (message.status, message.content, message.tool_call_id) == ("error", unknown, "call_9")

    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    assert tools["remember_fact"].invoke({"concept": "bo", "fact": "   "}) == (
        "The fact about 'bo' is empty: say what to remember. Nothing was remembered."
    )
    assert store.list_facts("alice", "bo") == []


def test_a_store_failure_comes_back_as_a_message(store, queue, photos, monkeypatch) -> None:
    tools = tools_of(store, queue, "alice")
    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    lost = StoreUnavailableError("The Chroma server at db:8000 is not reachable. Nothing was changed.")

    def unreachable(*args: Any) -> None:
        raise lost

    monkeypatch.setattr(store, "list_facts", unreachable)
    assert tools["list_concepts"].invoke({}) == str(lost)
    assert tools["concept_status"].invoke({"name": "bo"}) == str(lost)
    assert tools["forget_concept"].invoke({"name": "bo"}) == str(lost)
    monkeypatch.undo()
    assert store.get_concept("alice", "bo").photo_count == 3


def test_photos_can_be_limited_to_upload_folders(store, queue, photos, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere.png"
    make_photo().save(elsewhere)
    limited = concept_tools(store, queue, "alice", photo_dirs=[tmp_path / "uploads"])
    tools = {tool.name: tool for tool in limited}
    assert tools["teach_concept"].invoke({"name": "bo", "photo_paths": [str(elsewhere)]}) == (
        f"Photo {str(elsewhere)!r} is outside the folders photos may come from "
        f"({tmp_path / 'uploads'}); send a photo the user attached."
    )
    taught = tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    assert taught.startswith("Taught 'bo'")
    assert tools["recognize_concepts"].invoke({"photo_path": str(elsewhere)}).startswith(
        f"Photo {str(elsewhere)!r} is outside the folders"
    )


def test_tools_refuse_a_bad_user_or_a_queue_over_another_store(store, queue, tmp_path) -> None:
    with pytest.raises(ValidationError, match=r"user_id '  ' is not valid"):
        ListConceptsTool(store=store, user_id="  ")
    other = ConceptStore(tmp_path / "other", clip=ClipConfig(model_name="tiny"))
    with pytest.raises(ValidationError, match="The training queue works on another ConceptStore"):
        TeachConceptTool(store=other, queue=queue, user_id="alice")


def test_an_agent_gets_tool_errors_as_tool_results(store, queue, photos) -> None:
    tools = tools_of(store, queue, "alice")
    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    wait_for(queue, "alice", "bo")

    class ScriptedModel(FakeMessagesListChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
            return self

    model = ScriptedModel(responses=[
        AIMessage("", tool_calls=[
            {"name": "teach_concept", "args": {"name": "bo", "photo_paths": photos["rex"]},
             "id": "c1"},
            {"name": "remember_fact", "args": {"concept": "bo", "fact": "bo is red"}, "id": "c2"},
        ]),
        AIMessage("Done."),
    ])
    agent = create_agent(model, list(tools.values()))
    result = agent.invoke({"messages": [("user", "This is bo.")]})
    results = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert results["c1"].status == "error"
    assert results["c1"].content.startswith("You already have a concept named 'bo' (ready).")
    assert results["c2"].status == "success"
    assert results["c2"].content.startswith("Remembered about 'bo': 'bo is red' (fact id ")
    assert result["messages"][-1].text == "Done."
    assert store.get_concept("alice", "bo").photo_count == 3


def test_without_a_queue_concepts_are_taught_to_the_instant_tier_only(store, photos) -> None:
    tools = {tool.name: tool for tool in concept_tools(store, None, "alice")}

    taught = tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    assert taught == (
        "Taught 'bo' from 3 photos: I recognise it in photos now. Its own tokens are not trained "
        "here (this agent has no training queue)."
    )
    assert tools["recognize_concepts"].invoke({"photo_path": photos["bo"][0]}).startswith(
        "In this photo I recognise 'bo'"
    )
    assert tools["concept_status"].invoke({"name": "bo"}) == (
        "'bo' is taught (recognisable in photos now, its own tokens not trained). It has 3 "
        "photos and 0 remembered facts."
    )
    assert tools["teach_concept"].invoke({"name": "bo", "photo_paths": []}) == (
        "You already have a concept named 'bo' (taught). Nothing was changed: choose another "
        "name, or forget 'bo' first to teach it anew."
    )
    assert tools["forget_concept"].invoke({"name": "bo"}) == (
        "Forgot 'bo': its 3 photos, 0 facts are deleted."
    )
    assert store.list_concepts("alice") == []


# ---- forgetting while training, and jobs a crash interrupted


def test_forgetting_mid_training_cancels_the_job_and_leaves_nothing(
    store, queue, photos, gate
) -> None:
    tools = tools_of(store, queue, "alice")
    tools["teach_concept"].invoke({"name": "bo", "photo_paths": photos["bo"]})
    assert gate.started.wait(JOB_TIMEOUT)
    tools["teach_concept"].invoke({"name": "rex", "photo_paths": photos["rex"]})
    assert queue.job("alice", "rex").state == "queued"  # behind bo, which the gate holds

    # A queued job is cancelled without waiting for the running one ahead of it.
    started = time.monotonic()
    assert tools["forget_concept"].invoke({"name": "rex"}) == (
        "Forgot 'rex': its 3 photos, 0 facts are deleted. Its training was stopped."
    )
    assert time.monotonic() - started < 5
    rex_job = queue.job("alice", "rex")
    assert rex_job.state == "cancelled" and rex_job.finished.is_set()  # at once, not behind bo

    bo_job = queue.job("alice", "bo")
    assert bo_job.state == "running"
    assert tools["forget_concept"].invoke({"name": "bo"}) == (
        "Forgot 'bo': its 3 photos, 0 facts are deleted. Its training was stopped."
    )
    assert bo_job.state == "cancelled" and bo_job.finished.is_set()
    assert wait_for(queue, "alice", "rex") == "cancelled"
    assert user_records(store, "alice") == {"concepts": [], "photos": [], "facts": []}
    assert user_files(store, "alice") == []

    # Both names can be taught again, and train to the end.
    gate.open()
    for name in ("bo", "rex"):
        taught = tools["teach_concept"].invoke({"name": name, "photo_paths": photos[name]})
        assert taught.startswith(f"Taught {name!r}")
    assert wait_for(queue, "alice", "bo") == wait_for(queue, "alice", "rex") == "done"
    assert tools["list_concepts"].invoke({}) == (
        "You have 2 concepts:\n- bo: ready, 3 photos, 0 facts\n- rex: ready, 3 photos, 0 facts"
    )


def test_a_job_a_crash_interrupted_fails_and_can_be_taught_again(store, photos) -> None:
    store.add_concept("alice", "bo", photos["bo"], description="a red mug")
    store.add_concept("alice", "rex", photos["rex"])
    store.remember("alice", "rex", "rex squeaks")
    for name in ("bo", "rex"):
        store.set_status("alice", name, "training")  # as a process that died mid-training left it

    queue = TrainingQueue(store, model="tiny", device="cpu", dtype="fp32", config=FAST)
    try:
        tools = tools_of(store, queue, "alice")
        for name in ("bo", "rex"):
            record = store.get_concept("alice", name)
            assert (record.status, record.error) == ("failed", INTERRUPTED)
        assert tools["concept_status"].invoke({"name": "rex"}) == (
            "'rex' is failed (still recognisable in photos, but training its own tokens failed). "
            f"Reason: {INTERRUPTED}. To train it again, call teach_concept with name 'rex' and no "
            "photos. It has 3 photos and 1 remembered fact."
        )
        assert tools["list_concepts"].invoke({}) == (
            "You have 2 concepts:\n- bo: failed, 3 photos, 0 facts\n- rex: failed, 3 photos, 1 fact"
        )

        # Teaching again: through the queue, and through the tool with no photos.
        queue.submit("alice", "bo")
        assert tools["teach_concept"].invoke({"name": "rex", "photo_paths": []}) == (
            "Training 'rex' again from its 3 stored photos (its facts are kept); concept_status "
            "shows progress."
        )
        assert wait_for(queue, "alice", "bo") == wait_for(queue, "alice", "rex") == "done"
        for name in ("bo", "rex"):
            record = store.get_concept("alice", name)
            assert (record.status, record.error) == ("ready", "")
        assert [f.text for f in store.list_facts("alice", "rex")] == ["rex squeaks"]
    finally:
        queue.close()


# ---- the example


def test_the_agent_example_runs_offline_and_shows_each_step() -> None:
    result = run_python("examples/agent_with_memory.py")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    expected = [
        "[teach]\nTaught 'bo' from 4 photos: I recognise it in photos now",
        "[recognise]\nIn this photo I recognise 'bo' (similarity",
        "[ask (instant tier)]\nQ: Is bo in this photo?\nA: ",
        "[status]\n'bo' is ready (trained",
        "[ask (trained tokens)]\nQ: What does bo look like?\nA: ",
        "[remember]\nRemembered about 'bo': 'bo was a birthday present from Ana' (fact id ",
        "[recall]\nThe model is given these facts with the question: "
        "{'bo': ('bo was a birthday present from Ana',)}\nQ: Who gave me bo?\nA: ",
        "[list]\nYou have 1 concept:\n- bo: ready, 4 photos, 1 fact",
        "[forget]\nForgot 'bo': its 4 photos, 1 fact and trained tokens are deleted.",
        "[after forgetting]\nYou have no concepts yet",
        "None of your concepts is in this photo.\nUnknown concept 'bo': your concepts are none yet.",
        "\nDone.",
    ]
    positions = [out.find(text) for text in expected]
    missing = [text for text, p in zip(expected, positions, strict=True) if p < 0]
    assert not missing, f"steps missing from the output: {missing}\n{out}"
    assert positions == sorted(positions), "the steps ran out of order"


def test_names_counts_and_lengths_that_cannot_work_are_refused_up_front(
    tmp_path: Path, photos: dict[str, list[str]], runtime
) -> None:
    # The store knows the base model's vocabulary, as the app sets it up.
    store = ConceptStore(
        tmp_path / "vocab-home", clip=ClipConfig(model_name="tiny"), base_vocabulary=runtime.base_vocabulary
    )
    training = TrainingQueue(store, model="tiny", device="cpu", dtype="fp32", config=FAST)
    try:
        tools = tools_of(store, training, "alice")
        teach = tools["teach_concept"].invoke
        assert teach({"name": "s", "photo_paths": photos["bo"]}) == (
            "Concept name 's' cannot be used with this model: its vocabulary already has the token "
            "'<s>'. Choose another name, such as 's-1'. Nothing was stored."
        )
        assert teach({"name": "image", "photo_paths": photos["bo"]}).startswith(
            "Concept name 'image' cannot be used with this model: its vocabulary already has the "
            "token '<image>'."
        )
        assert teach({"name": "bo_1", "photo_paths": photos["bo"]}).startswith(
            "Concept name 'bo_1' ends in '_' and digits"
        )
        assert teach({"name": "bo", "photo_paths": photos["bo"][:2]}) == (
            "Teaching 'bo' needs 3 to 10 photos of it, and 2 were given: with fewer, recognition "
            "is much weaker (about 0.68 from one photo in the paper, over 0.90 from five). Add "
            "photos taken on other days or from other sides. Nothing was stored."
        )
        many = [str(make_photo((10 * i, 90, 200)).save(tmp_path / f"m{i}.png") or tmp_path / f"m{i}.png") for i in range(11)]
        assert teach({"name": "bo", "photo_paths": many}).startswith(
            "Teaching 'bo' takes at most 10 photos, and 11 were given"
        )
        assert teach({"name": "bo", "photo_paths": photos["bo"], "description": "x" * 501}) == (
            "Could not teach 'bo': The description of 'bo' is 501 characters long; the limit is "
            "500. Say it in fewer words, or split it into several facts. Nothing was stored."
        )
        assert user_records(store, "alice") == {"concepts": [], "photos": [], "facts": []}
        assert training.job("alice", "bo") is None

        assert teach({"name": "bo", "photo_paths": photos["bo"]}).startswith("Taught 'bo'")
        huge = "bo sleeps." * 20_000
        assert tools["remember_fact"].invoke({"concept": "bo", "fact": huge}) == (
            "The fact about 'bo' is 200,000 characters long; the limit is 1,000. Say it in fewer "
            "words, or split it into several facts. Nothing was remembered."
        )
        assert store.list_facts("alice", "bo") == []
        wait_for(training, "alice", "bo")
    finally:
        training.close()
