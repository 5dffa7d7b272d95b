"""`Conversations`: each user's chat kept in SQLite through LangChain's `SQLChatMessageHistory`.

Everything the page showed is kept, so a reload shows it again: questions and answers, slash
commands and their replies, questions that failed and answers cut short. Each message says what it
was (`KIND_KEY` in its `additional_kwargs`); only answered questions and their answers go back to
the model as earlier turns. An answer keeps the concepts it used, shown under it.

Forgetting a concept forgets what the conversation holds of it: `forget_concept` deletes every
message that names the concept, carries one of its photos, repeats its description or a fact, or
used it (an answer's concepts), with the reply to each such message; and the uploaded copies no
kept message shows. The database is our own file (not Chroma's), opened
with SQLite's `secure_delete`, so deleted messages are overwritten, not left in free pages.

Chosen not to do: editing messages in place (a forgotten concept's messages go whole), and the
async API (the app's handlers are synchronous).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from sqlalchemy import Engine, create_engine, event

from yollava_agent.concept import mentions

with warnings.catch_warnings():  # the package's sunset notice, once per import
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.chat_message_histories import SQLChatMessageHistory

logger = logging.getLogger(__name__)

KIND_KEY = "yollava_kind"
"""Where a message says what it was: one of the kinds below."""
QUESTION, ANSWER, COMMAND, FAILED = "question", "answer", "command", "failed"
CONCEPTS_KEY = "yollava_concepts"
"""On an answer: the concepts it used (`ChatYoLLaVA`'s response metadata)."""
MODEL_TURNS = 12
"""Most earlier messages given to the model with a question."""


def history_engine(url: str) -> Engine:
    """The conversations database, with deleted rows overwritten on disk (`secure_delete`)."""
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _overwrite_deleted_rows(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA secure_delete = ON")

    return engine


def marked(message: BaseMessage, kind: str, **extra: Any) -> BaseMessage:
    """`message` marked as one `kind` of message, with extra data for the page."""
    message.additional_kwargs = {**message.additional_kwargs, KIND_KEY: kind, **extra}
    return message


def kind_of(message: BaseMessage) -> str:
    """What a kept message was (a message kept before kinds existed counts as a turn)."""
    default = QUESTION if isinstance(message, HumanMessage) else ANSWER
    return str(message.additional_kwargs.get(KIND_KEY, default))


class Conversations:
    """Users' conversations in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _of(self, user_id: str) -> SQLChatMessageHistory:
        return SQLChatMessageHistory(session_id=user_id, connection=self.engine)

    def messages(self, user_id: str) -> list[BaseMessage]:
        """The user's conversation, oldest first."""
        return self._of(user_id).messages

    def add(self, user_id: str, messages: Sequence[BaseMessage]) -> None:
        """Keep messages at the end of the user's conversation (one transaction)."""
        self._of(user_id).add_messages(messages)

    def clear(self, user_id: str) -> None:
        """Start the user's conversation anew."""
        self._of(user_id).clear()

    def model_turns(self, user_id: str) -> list[BaseMessage]:
        """The latest answered questions and their answers, as text, for the model."""
        turns: list[BaseMessage] = []
        messages = self.messages(user_id)
        for question, answer in zip(messages, messages[1:], strict=False):
            if kind_of(question) == QUESTION and kind_of(answer) == ANSWER:
                turns += [HumanMessage(question.text), AIMessage(answer.text)]
        return turns[-MODEL_TURNS:]

    def forget_concept(
        self, user_id: str, name: str, texts: Iterable[str], photo_digests: Iterable[str]
    ) -> list[Path]:
        """Delete the messages about a concept; return the photos they showed."""
        texts = [t for t in texts if t.strip()]
        digests = set(photo_digests)
        history = self._of(user_id)
        model = history.sql_model_class
        shown: list[Path] = []
        with history.session_maker() as session:
            rows = session.query(model).filter(model.session_id == user_id).order_by(model.id).all()
            question_deleted = False
            for row in rows:
                message = history.converter.from_sql_model(row)
                photos = _photo_paths(message)
                about = (
                    mentions(message.text, name)
                    or any(text in message.text for text in texts)
                    or any(path.stem in digests for path in photos)
                    or any(c["name"] == name for c in message.additional_kwargs.get(CONCEPTS_KEY, []))
                )
                # The reply to a message about the concept goes with it, whatever it says.
                if about or (question_deleted and isinstance(message, AIMessage)):
                    shown.extend(photos)
                    session.delete(row)
                question_deleted = about and isinstance(message, HumanMessage)
            session.commit()
        return shown

    def photos_shown(self, user_id: str) -> set[Path]:
        """Every photo the user's kept messages show."""
        return {path for message in self.messages(user_id) for path in _photo_paths(message)}


def _photo_paths(message: BaseMessage) -> list[Path]:
    blocks = message.content if isinstance(message.content, list) else []
    return [
        Path(block["path"])
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "image" and block.get("path")
    ]


def remove_files(paths: Iterable[Path]) -> None:
    """Delete files that may already be gone."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
