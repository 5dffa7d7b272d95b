"""LangChain tools over concept memory: teach, check, list, forget, recognise, remember.

Six `BaseTool`s (`teach_concept`, `concept_status`, `list_concepts`, `forget_concept`,
`recognize_concepts`, `remember_fact`) over a `ConceptStore` and a `TrainingQueue`. Every tool is
bound to one user id when it is made (`concept_tools(store, queue, user_id)`): the id is a field
of the tool, never an argument the model fills in, so an agent can only see and change the
concepts of the user it was built for. `context_concept_tools(store, queue)` makes the same six
for an agent that serves many users: each call builds the tool for the user of the agent's
runtime context (`ToolRuntime`, see `context.py`), which LangGraph injects and the model can
neither see nor forge; a call without one is refused. Without a queue (`None`) concepts are
taught to the instant tier only (recognised in photos, described in words) and never trained.

Expected problems (an unknown or duplicate name, a bad name, missing or unreadable photos, a job
still running, an unreachable store) come back to the agent as the tool's result, through
LangChain's `ToolException` and `handle_tool_error`, with the value at fault and what to do;
a call that fails changes nothing stored (one exception, said in its message: a concept taught
whose training could not be queued stays taught). Arguments that do not match a tool's schema come
back the same way (`handle_validation_error`). Bugs still raise. With `response_format=
"content_and_artifact"` a tool call also returns the plain data (records, scores) as the
`ToolMessage` artifact, for UIs; `tool.invoke(args)` returns the text.

`teach_concept` on a concept whose training failed or was stopped (a crash, a shutdown), called
with no photos, trains it again from its stored photos, keeping its facts.

Chosen not to do: tools for another user (no `user_id` argument anywhere); reading photos from
the store's own concept folders (`<home>/users`, where every user's photos and trained tokens
live), so one user's agent cannot copy another user's photos by path; fetching photos from URLs
(the image loader refuses them); listing or deleting single facts (the chat model is given a
concept's facts whenever the concept is active); async variants beyond LangChain's default of
running the sync tool in an executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool, ToolException
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from yollava_agent.concept import validate_concept_name
from yollava_agent.errors import UnknownConceptError, YoLLaVAError
from yollava_agent.memory.store import (
    MAX_USER_ID_LENGTH,
    ConceptRecord,
    ConceptStore,
    is_valid_user_id,
)
from yollava_agent.training.config import check_teach_photo_count
from yollava_agent.tools.context import MissingUserError, user_id_from_context
from yollava_agent.tools.queue import TrainingJob, TrainingQueue

logger = logging.getLogger(__name__)

__all__ = [
    "ConceptStatusInput",
    "ConceptStatusTool",
    "ForgetConceptInput",
    "ForgetConceptTool",
    "ListConceptsInput",
    "ListConceptsTool",
    "RecognizeConceptsInput",
    "RecognizeConceptsTool",
    "RememberFactInput",
    "RememberFactTool",
    "TeachConceptInput",
    "TeachConceptTool",
    "concept_tools",
    "context_concept_tools",
]

_ACTIVE_JOB_STATES = ("queued", "running")
_STATUS_MEANING = {
    "taught": "recognisable in photos now, its own tokens not trained",
    "training": "recognisable in photos now, its own tokens in training",
    "ready": "trained, so the chat model knows it by its own tokens and finds it in photos",
    "failed": "still recognisable in photos, but training its own tokens failed",
}


# ---- argument schemas


class TeachConceptInput(BaseModel):
    """Arguments of `teach_concept`."""

    name: str = Field(
        description=(
            "Short name of the person, pet or object, as the user calls it: letters, digits, "
            "'_' and '-' (for example 'bo' or 'my-mug')."
        )
    )
    photo_paths: list[str] = Field(
        description=(
            "Paths of 3 to 10 photos showing it (files the user attached). Leave empty only to "
            "retry training of an existing concept whose training failed or was stopped."
        )
    )
    description: str = Field(
        default="",
        description="Optional words about it from the user ('a red ceramic mug with a chip').",
    )


class ConceptStatusInput(BaseModel):
    """Arguments of `concept_status`."""

    name: str = Field(description="Name of one of the user's concepts.")


class ListConceptsInput(BaseModel):
    """`list_concepts` takes no arguments."""


class ForgetConceptInput(BaseModel):
    """Arguments of `forget_concept`."""

    name: str = Field(
        description="Name of the concept to forget, with its photos, facts and trained tokens."
    )


class RecognizeConceptsInput(BaseModel):
    """Arguments of `recognize_concepts`."""

    photo_path: str = Field(description="Path of the photo to look for the user's concepts in.")


class RememberFactInput(BaseModel):
    """Arguments of `remember_fact`."""

    concept: str = Field(description="Name of the user's concept the fact is about.")
    fact: str = Field(description="The fact to remember, as a sentence ('bo's birthday is May 3').")


# ---- shared behaviour


def _validation_message(error: ValidationError | Any) -> str:
    """A validation error as one sentence an agent can act on."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return (
        f"Invalid arguments ({'; '.join(problems)}). Call the tool again with arguments matching "
        "its schema."
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _ConceptTool(BaseTool):
    """A tool bound to one user's concepts in a `ConceptStore`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: ConceptStore
    """The concept memory."""
    user_id: str
    """The one user this tool acts for; never taken from the model's arguments."""
    handle_tool_error: bool | str | Callable[[ToolException], Any] | None = True
    handle_validation_error: bool | str | Callable[[Any], str] | None = _validation_message
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    @field_validator("user_id")
    @classmethod
    def _check_user_id(cls, value: str) -> str:
        if not is_valid_user_id(value):
            msg = (
                f"user_id {value!r} is not valid: give a non-empty string of at most "
                f"{MAX_USER_ID_LENGTH} characters."
            )
            raise ValueError(msg)
        return value

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        """Do the tool's work (`_act`); any error of the package becomes the tool's message.

        The tools catch the errors they expect and word them; this net catches the rest (an
        unreachable Chroma server, an unwritable data folder), whose messages say what to do.
        """
        try:
            return self._act(*args, **kwargs)
        except YoLLaVAError as e:
            raise ToolException(str(e)) from e

    def _act(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _record(self, name: str) -> ConceptRecord:
        """The user's concept; `UnknownConceptError` names it and the user's concepts."""
        return self.store.get_concept(self.user_id, name)

    def _facts_count(self, name: str) -> int:
        return len(self.store.list_facts(self.user_id, name))


class _QueueTool(_ConceptTool):
    """A concept tool that also drives the training queue."""

    queue: TrainingQueue | None = None
    """The training queue over the same store; None: concepts are never trained (instant tier)."""

    @model_validator(mode="after")
    def _same_store(self) -> _QueueTool:
        if self.queue is not None and self.queue.store is not self.store:
            msg = (
                "The training queue works on another ConceptStore than the tool: give both the "
                "same store."
            )
            raise ValueError(msg)
        return self

    def _job(self, name: str) -> TrainingJob | None:
        return None if self.queue is None else self.queue.job(self.user_id, name)

    def _active_job(self, name: str) -> TrainingJob | None:
        job = self._job(name)
        return job if job is not None and job.state in _ACTIVE_JOB_STATES else None


# ---- the tools


class TeachConceptTool(_QueueTool):
    """Teach a new concept from photos: recognisable at once, then trained in the background.

    Setup:
        ```python
        from yollava_agent.memory import ConceptStore
        from yollava_agent.tools import TeachConceptTool, TrainingQueue

        store = ConceptStore()
        queue = TrainingQueue(store)
        tool = TeachConceptTool(store=store, queue=queue, user_id="alice")
        ```

    Invoke:
        ```python
        tool.invoke({"name": "bo", "photo_paths": ["bo1.jpg", "bo2.jpg", "bo3.jpg"]})
        ```
    """

    name: str = "teach_concept"
    description: str = (
        "Teach a new personal concept (a person, pet or object of the user) from photos of it. "
        "It is recognisable in photos at once and its own tokens train in the background. Use "
        "when the user introduces something of theirs with photos."
    )
    args_schema: type[BaseModel] = TeachConceptInput
    photo_dirs: list[Path] | None = None
    """When set, photos must lie inside one of these folders (say, the app's upload folder)."""
    status_hint: str = "concept_status"
    """How the caller checks progress, named in the reply: the tool for agents, `/status {name}`
    in the app."""

    def _act(
        self, name: str, photo_paths: list[str], description: str = ""
    ) -> tuple[str, dict[str, Any]]:
        try:
            validate_concept_name(name, self.store.base_vocabulary)
        except YoLLaVAError as e:
            raise ToolException(f"{e} Nothing was stored.") from e
        job = self._active_job(name)
        if job is not None and job.cancel.is_set():
            msg = (
                f"An earlier training job of {name!r} is still stopping. Nothing was changed: "
                "call teach_concept again in a moment."
            )
            raise ToolException(msg)
        if job is not None:
            msg = (
                f"{name!r} is already being trained ({job.describe()}). Nothing was changed: wait "
                f"for it to finish (concept_status), or forget {name!r} first."
            )
            raise ToolException(msg)
        existing = self._existing(name)
        if existing is not None:
            return self._retry(existing, photo_paths)
        if not photo_paths:
            msg = (
                f"Teaching {name!r} needs photos of it, and photo_paths is empty. Nothing was "
                "stored: ask the user for 3 to 10 photos and call teach_concept again."
            )
            raise ToolException(msg)
        paths = [_photo_path(p, self.store, self.photo_dirs) for p in photo_paths]
        try:
            check_teach_photo_count(name, len(set(paths)))
        except ValueError as e:
            raise ToolException(f"{e} Nothing was stored.") from e
        try:
            record = self.store.add_concept(self.user_id, name, paths, description)
        except (YoLLaVAError, ValueError) as e:
            raise ToolException(f"Could not teach {name!r}: {e} Nothing was stored.") from e
        job = self._submit(record)
        logger.info(
            "Taught concept %r from %d photos; %s",
            name,
            record.photo_count,
            "no training queue" if job is None else "training queued",
        )
        trained = (
            ". Its own tokens are not trained here (this agent has no training queue)."
            if job is None
            else ", and training of its own tokens has started "
            f"({self.status_hint.format(name=name)} shows progress)."
        )
        content = (
            f"Taught {name!r} from {_plural(record.photo_count, 'photo')}: I recognise it in "
            f"photos now{trained}"
        )
        return content, {"concept": _record_data(record), "job": _job_data(job)}

    def _existing(self, name: str) -> ConceptRecord | None:
        try:
            return self.store.get_concept(self.user_id, name)
        except UnknownConceptError:
            return None
        except YoLLaVAError as e:
            raise ToolException(f"Could not teach {name!r}: {e}") from e

    def _retry(self, record: ConceptRecord, photo_paths: list[str]) -> tuple[str, dict[str, Any]]:
        """An existing name: retrain it when asked with no photos and its training is not done."""
        retryable = record.status in ("failed", "taught") and self.queue is not None
        if photo_paths or not retryable:
            hint = (
                f" To retry its training, call teach_concept with name {record.name!r} and no "
                "photos."
                if retryable
                else ""
            )
            msg = (
                f"You already have a concept named {record.name!r} ({record.status}). Nothing was "
                f"changed: choose another name, or forget {record.name!r} first to teach it anew."
                f"{hint}"
            )
            raise ToolException(msg)
        job = self._submit(record)
        logger.info("Retraining concept %r from its stored photos", record.name)
        content = (
            f"Training {record.name!r} again from its "
            f"{_plural(record.photo_count, 'stored photo')} (its facts are kept); "
            f"{self.status_hint.format(name=record.name)} shows progress."
        )
        current = self.store.get_concept(self.user_id, record.name)
        return content, {"concept": _record_data(current), "job": _job_data(job)}

    def _submit(self, record: ConceptRecord) -> TrainingJob | None:
        if self.queue is None:
            return None
        try:
            return self.queue.submit(self.user_id, record.name)
        except (YoLLaVAError, ValueError) as e:
            msg = (
                f"{record.name!r} is stored and recognisable in photos, but its training did not "
                f"start: {e}"
            )
            raise ToolException(msg) from e


class ConceptStatusTool(_QueueTool):
    """Where one of the user's concepts stands: taught, training (with progress), ready or failed.

    Invoke:
        ```python
        ConceptStatusTool(store=store, queue=queue, user_id="alice").invoke({"name": "bo"})
        ```
    """

    name: str = "concept_status"
    description: str = (
        "Show the status of one of the user's concepts: taught, training (with progress), ready, "
        "or failed (with the reason)."
    )
    args_schema: type[BaseModel] = ConceptStatusInput

    def _act(self, name: str) -> tuple[str, dict[str, Any]]:
        record = self._record(name)
        job = self._job(name)
        lines = [f"{name!r} is {record.status} ({_STATUS_MEANING[record.status]})."]
        if job is not None and job.state in _ACTIVE_JOB_STATES:
            lines.append(f"Progress: {job.describe()}.")
        elif record.status == "training":
            lines.append("Its training does not run in this process (another one may run it).")
        if record.status == "failed":
            lines.append(f"Reason: {record.error or 'not recorded'}.")
        retryable = record.status in ("failed", "taught") and self.queue is not None
        if retryable and self._active_job(name) is None:
            lines.append(f"To train it again, call teach_concept with name {name!r} and no photos.")
        lines.append(
            f"It has {_plural(record.photo_count, 'photo')} and "
            f"{_plural(self._facts_count(name), 'remembered fact')}."
        )
        return " ".join(lines), {"concept": _record_data(record), "job": _job_data(job)}


class ListConceptsTool(_ConceptTool):
    """The user's concepts with their status, photo count and facts count.

    Invoke:
        ```python
        ListConceptsTool(store=store, user_id="alice").invoke({})
        ```
    """

    name: str = "list_concepts"
    description: str = (
        "List the user's personal concepts with their status, number of photos and number of "
        "remembered facts."
    )
    args_schema: type[BaseModel] = ListConceptsInput

    def _act(self) -> tuple[str, list[dict[str, Any]]]:
        try:
            records = self.store.list_concepts(self.user_id)
        except YoLLaVAError as e:
            raise ToolException(f"Could not list your concepts: {e}") from e
        if not records:
            return "You have no concepts yet; teach one with teach_concept and a few photos.", []
        items = []
        lines = [f"You have {_plural(len(records), 'concept')}:"]
        for record in records:
            facts = self._facts_count(record.name)
            items.append({**_record_data(record), "facts": facts})
            lines.append(
                f"- {record.name}: {record.status}, {_plural(record.photo_count, 'photo')}, "
                f"{_plural(facts, 'fact')}"
            )
        return "\n".join(lines), items


class ForgetConceptTool(_QueueTool):
    """Forget a concept: stop its training, then delete its records, photos, facts and tokens.

    Invoke:
        ```python
        ForgetConceptTool(store=store, queue=queue, user_id="alice").invoke({"name": "bo"})
        ```
    """

    name: str = "forget_concept"
    description: str = (
        "Forget one of the user's concepts for good: stops its training and deletes its photos, "
        "facts and trained tokens. Use only when the user asks to forget it."
    )
    args_schema: type[BaseModel] = ForgetConceptInput
    cancel_timeout: float = 60.0
    """Seconds to wait for a running training job to stop before giving up."""

    def _act(self, name: str) -> tuple[str, dict[str, Any]]:
        record = self._record(name)
        facts = self._facts_count(name)
        job = self._active_job(name)
        if job is not None:
            # A running job is waited on, so that it writes nothing once the folder is gone. A
            # queued one is not (it may wait behind another user's job): once cancelled it stops
            # before its first training step, and writes nothing into the concept's folder.
            queued = job.state == "queued"
            timeout = 0.0 if queued else self.cancel_timeout
            stopped = self.queue.cancel(self.user_id, name, timeout=timeout)
            if not queued and not (stopped or job.finished.is_set()):
                msg = (
                    f"Training of {name!r} did not stop within {self.cancel_timeout:.0f} s, so "
                    f"{name!r} was not forgotten. Try forget_concept again in a minute."
                )
                raise ToolException(msg)
        try:
            self.store.forget(self.user_id, name)
        except YoLLaVAError as e:
            raise ToolException(f"Could not forget {name!r}: {e}") from e
        stopped = " Its training was stopped." if job is not None else ""
        tokens = " and trained tokens" if record.artifact_path else ""
        content = (
            f"Forgot {name!r}: its {_plural(record.photo_count, 'photo')}, "
            f"{_plural(facts, 'fact')}{tokens} are deleted.{stopped}"
        )
        return content, {"forgotten": name, "training_stopped": job is not None}


class RecognizeConceptsTool(_ConceptTool):
    """Which of the user's concepts appear in a photo, by the instant tier's similarity.

    Invoke:
        ```python
        RecognizeConceptsTool(store=store, user_id="alice").invoke({"photo_path": "park.jpg"})
        ```
    """

    name: str = "recognize_concepts"
    description: str = (
        "Find which of the user's personal concepts appear in a photo. Returns their names with "
        "similarity scores, or says that none is there."
    )
    args_schema: type[BaseModel] = RecognizeConceptsInput
    photo_dirs: list[Path] | None = None
    """When set, the photo must lie inside one of these folders."""

    def _act(self, photo_path: str) -> tuple[str, list[dict[str, Any]]]:
        path = _photo_path(photo_path, self.store, self.photo_dirs)
        try:
            hits = self.store.recognize(self.user_id, path)
        except (YoLLaVAError, ValueError) as e:
            raise ToolException(f"Could not look at the photo: {e}") from e
        found = [
            {"name": h.name, "score": round(h.score, 4), "threshold": round(h.threshold, 4)}
            for h in hits
        ]
        if not hits:
            return "None of your concepts is in this photo.", found
        names = ", ".join(
            f"{h.name!r} (similarity {h.score:.2f}, threshold {h.threshold:.2f})" for h in hits
        )
        return f"In this photo I recognise {names}.", found


class RememberFactTool(_ConceptTool):
    """Remember a fact about one of the user's concepts; the chat model is told it when relevant.

    Invoke:
        ```python
        RememberFactTool(store=store, user_id="alice").invoke(
            {"concept": "bo", "fact": "bo's birthday is May 3"}
        )
        ```
    """

    name: str = "remember_fact"
    description: str = (
        "Remember a fact the user tells about one of their concepts (a birthday, where it is "
        "from). The fact is given to the chat model whenever the concept comes up."
    )
    args_schema: type[BaseModel] = RememberFactInput

    def _act(self, concept: str, fact: str) -> tuple[str, dict[str, Any]]:
        try:
            item = self.store.remember(self.user_id, concept, fact)
        except (YoLLaVAError, ValueError) as e:
            raise ToolException(f"{e} Nothing was remembered.") from e
        content = f"Remembered about {concept!r}: {item.text!r} (fact id {item.id})."
        return content, {"concept": concept, "fact_id": item.id, "fact": item.text}


# ---- helpers


def _photo_path(value: str, store: ConceptStore, photo_dirs: Sequence[Path] | None) -> str:
    """`value` if a tool may read it: a data URL, or a file outside the store's concept folders.

    Remote URLs pass through: the image loader refuses them with its own message.
    """
    if value.startswith(("data:", "http://", "https://")):
        return value
    local = unquote(urlparse(value).path) if value.startswith("file://") else value
    resolved = Path(local).expanduser().resolve()
    if resolved.is_relative_to((store.home / "users").resolve()):
        msg = (
            f"Photo {value!r} is inside the concept store's own folders, which tools do not read. "
            "Send the original photo the user attached."
        )
        raise ToolException(msg)
    if photo_dirs is not None and not any(resolved.is_relative_to(d.resolve()) for d in photo_dirs):
        folders = ", ".join(str(d) for d in photo_dirs) or "none"
        msg = (
            f"Photo {value!r} is outside the folders photos may come from ({folders}); send a "
            "photo the user attached."
        )
        raise ToolException(msg)
    return value


def _record_data(record: ConceptRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "status": record.status,
        "description": record.description,
        "photo_count": record.photo_count,
        "threshold": record.threshold,
        "error": record.error,
        "updated": record.updated,
    }


def _job_data(job: TrainingJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {"state": job.state, "progress": job.describe(), "error": job.error}


_TOOL_CLASSES: tuple[type[_ConceptTool], ...] = (
    TeachConceptTool,
    ConceptStatusTool,
    ListConceptsTool,
    ForgetConceptTool,
    RecognizeConceptsTool,
    RememberFactTool,
)


def _bound_tool(
    tool_class: type[_ConceptTool],
    store: ConceptStore,
    queue: TrainingQueue | None,
    user_id: str,
    photo_dirs: list[Path] | None,
    status_hint: str = "concept_status",
) -> _ConceptTool:
    """One tool of `tool_class`, bound to `user_id`."""
    options: dict[str, Any] = {}
    if issubclass(tool_class, _QueueTool):
        options["queue"] = queue
    if "photo_dirs" in tool_class.model_fields:
        options["photo_dirs"] = photo_dirs
    if "status_hint" in tool_class.model_fields:
        options["status_hint"] = status_hint
    return tool_class(store=store, user_id=user_id, **options)


def concept_tools(
    store: ConceptStore,
    queue: TrainingQueue | None,
    user_id: str,
    *,
    photo_dirs: Sequence[str | Path] | None = None,
    status_hint: str = "concept_status",
) -> list[BaseTool]:
    """The six concept tools, bound to `user_id`.

    `queue` None teaches concepts to the instant tier only. `photo_dirs`, when given, are the
    only folders `teach_concept` and `recognize_concepts` read photos from (say, this user's
    upload folder). `status_hint` is how replies tell people to check progress
    (`"/status {name}"` in the app).
    """
    dirs = None if photo_dirs is None else [Path(d) for d in photo_dirs]
    return [_bound_tool(cls, store, queue, user_id, dirs, status_hint) for cls in _TOOL_CLASSES]


def context_concept_tools(
    store: ConceptStore,
    queue: TrainingQueue | None,
    *,
    photo_dirs: Sequence[str | Path] | None = None,
) -> list[BaseTool]:
    """The six concept tools for the user of each call, read from the agent's runtime context.

    Each call builds the tool of `concept_tools` for that user and runs it, so the two behave
    alike; the model sees the same arguments (no user id). Outside an agent, or in a run whose
    context has no user id, a call raises `MissingUserError` instead of running as anyone.
    """
    dirs = None if photo_dirs is None else [Path(d) for d in photo_dirs]
    return [_context_tool(cls, store, queue, dirs) for cls in _TOOL_CLASSES]


def _context_tool(
    tool_class: type[_ConceptTool],
    store: ConceptStore,
    queue: TrainingQueue | None,
    photo_dirs: list[Path] | None,
) -> StructuredTool:
    fields = tool_class.model_fields
    name = fields["name"].default
    schema = fields["args_schema"].default
    # LangGraph's ToolNode injects the run's `ToolRuntime` as `runtime`, hidden from the model,
    # and strips any value the model sends under that name. The hidden field keeps it through
    # argument parsing, which drops every argument of a schema without fields (list_concepts);
    # `exclude` keeps pydantic from serialising the runtime while it validates the arguments.
    with_runtime = create_model(
        schema.__name__,
        __base__=schema,
        __doc__=schema.__doc__,
        runtime=(Annotated[Any, InjectedToolArg], Field(default=None, exclude=True)),
    )

    def run(runtime: ToolRuntime = None, **arguments: Any) -> Any:  # type: ignore[assignment]
        if runtime is None:
            msg = (
                f"Tool {name!r} acts for the user of the agent run that calls it, and was called "
                "outside one: let an agent call it (invoked with context="
                "ConceptMemoryContext(user_id=...)), or use concept_tools(store, queue, user_id) "
                "for tools bound to one user."
            )
            raise MissingUserError(msg)
        user_id = user_id_from_context(runtime.context)
        return _bound_tool(tool_class, store, queue, user_id, photo_dirs)._run(**arguments)

    return StructuredTool(
        name=name,
        description=fields["description"].default,
        args_schema=with_runtime,
        func=run,
        response_format=fields["response_format"].default,
        handle_tool_error=fields["handle_tool_error"].default,
        handle_validation_error=fields["handle_validation_error"].default,
    )
