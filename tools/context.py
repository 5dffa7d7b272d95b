"""Whose memory an agent run uses: the user id of LangChain's runtime context.

`ConceptMemoryMiddleware` and the tools it registers never take the user from the model's output
or a tool argument: the application says who the user is when it invokes the agent, through
LangGraph's runtime context (`create_agent(..., context_schema=ConceptMemoryContext)` and
`agent.invoke(..., context=ConceptMemoryContext(user_id=...))`). `user_id_from_context` reads it
from that object, from any other context object with a `user_id` attribute, or from a mapping
with a `"user_id"` key, and refuses a run without one: no default user, no anonymous run.

Not here: authentication. The id is whatever the application's own login established.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from yollava_agent.errors import YoLLaVAError
from yollava_agent.memory.store import MAX_USER_ID_LENGTH, is_valid_user_id

__all__ = ["ConceptMemoryContext", "MissingUserError", "user_id_from_context"]

_HOW = (
    "create the agent with context_schema=ConceptMemoryContext and invoke it with "
    "context=ConceptMemoryContext(user_id=...) (any context with a user_id works). Nothing was run."
)


class MissingUserError(YoLLaVAError, ValueError):
    """An agent run whose runtime context has no valid user id."""


@dataclass(frozen=True)
class ConceptMemoryContext:
    """The runtime context that tells concept memory whose concepts a run uses."""

    user_id: str
    """The user the agent acts for, as the application's login knows them."""


def user_id_from_context(context: object) -> str:
    """The user id of a runtime context; `MissingUserError` says how to give one."""
    if context is None:
        msg = (
            f"Concept memory needs the user's id in the agent's runtime context, and it has "
            f"none: {_HOW}"
        )
        raise MissingUserError(msg)
    if isinstance(context, Mapping):
        user_id = context.get("user_id")
    else:
        user_id = getattr(context, "user_id", None)
    if user_id is None:
        msg = (
            f"Concept memory needs the user's id in the agent's runtime context, and the context "
            f"{type(context).__name__} has no user_id: {_HOW}"
        )
        raise MissingUserError(msg)
    if not is_valid_user_id(user_id):
        msg = (
            f"User id {user_id!r} in the agent's runtime context is not valid: give a non-empty "
            f"string of at most {MAX_USER_ID_LENGTH} characters. Nothing was run."
        )
        raise MissingUserError(msg)
    return user_id
