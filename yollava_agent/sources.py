"""What the chat model needs to know about the concepts of a conversation, and where it gets them.

`ActiveConcept` is a concept as a prompt sees it: its trained tokens when there are any, else its
description as text (the instant tier), plus remembered facts. `ConceptSource` is the small
protocol through which the chat model asks long-term memory for concepts; the memory store
implements it, so the core never imports `memory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from yollava_agent.concept import Concept, validate_concept_name


@dataclass(frozen=True)
class ActiveConcept:
    """A concept active in one answer."""

    name: str
    """The concept's name."""
    concept: Concept | None = None
    """Trained tokens, when training is done; None while only the instant tier exists."""
    description: str = ""
    """The user's words about it, used as text until tokens are trained."""
    facts: tuple[str, ...] = ()
    """Facts the user asked to remember ("bo's birthday is May 3")."""

    def __post_init__(self) -> None:
        validate_concept_name(self.name)
        if self.concept is not None and self.concept.name != self.name:
            msg = f"ActiveConcept {self.name!r} carries the tokens of concept {self.concept.name!r}."
            raise ValueError(msg)

    @classmethod
    def from_concept(cls, concept: Concept) -> ActiveConcept:
        """The active form of a trained concept artifact."""
        return cls(name=concept.name, concept=concept, description=concept.description)


@runtime_checkable
class ConceptSource(Protocol):
    """Where a chat model finds concepts: long-term memory, scoped to one user."""

    def get_concept(self, name: str) -> ActiveConcept:
        """The concept called `name`; raise `UnknownConceptError` naming it if there is none."""
        ...

    def concepts_for(self, text: str, images: Sequence[Image.Image]) -> Sequence[ActiveConcept]:
        """Concepts the latest user turn calls for: recognised in its photos or named in its text."""
        ...
