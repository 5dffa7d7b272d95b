"""`StoreConceptSource`: the store as the chat model's `ConceptSource`, for one user.

The chat model asks two things: a concept by name, and the concepts the latest user turn calls
for. Names are found in the text as words ("bo", "<bo>", "my dog bo"; case-insensitive, whole
words only); photos are run through the instant tier's `recognize`. A concept whose training is
done comes with its trained tokens (loaded once per artifact version); until then with its
description, and always with its remembered facts. With `tokens=False` no concept comes with its
tokens, for models that read only text (`ConceptMemoryMiddleware` on a hosted chat model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from yollava_agent.concept import Concept, mentions
from yollava_agent.sources import ActiveConcept

from yollava_agent.memory.store import ConceptRecord, ConceptStore


class StoreConceptSource:
    """Concepts of one user, from a `ConceptStore`."""

    def __init__(self, store: ConceptStore, user_id: str, *, tokens: bool = True) -> None:
        self.store = store
        self.user_id = user_id
        self.tokens = tokens
        """False: concepts come without their trained tokens, which are then never read."""
        self._loaded: dict[tuple[str, str], Concept] = {}

    def _tokens(self, record: ConceptRecord) -> Concept | None:
        if not self.tokens or record.status != "ready" or not record.artifact_path:
            return None
        key = (record.artifact_path, record.updated)
        if key not in self._loaded:
            self._loaded[key] = Concept.from_pretrained(Path(record.artifact_path))
        return self._loaded[key]

    def _active(self, record: ConceptRecord) -> ActiveConcept:
        facts = tuple(f.text for f in self.store.list_facts(self.user_id, record.name))
        return ActiveConcept(
            name=record.name,
            concept=self._tokens(record),
            description=record.description,
            facts=facts,
        )

    def get_concept(self, name: str) -> ActiveConcept:
        """The user's concept `name`; `UnknownConceptError` if they have none of that name."""
        return self._active(self.store.get_concept(self.user_id, name))

    def named_in(self, text: str) -> list[str]:
        """Names of the user's concepts that `text` mentions as words."""
        return [r.name for r in self.store.list_concepts(self.user_id) if mentions(text, r.name)]

    def concepts_for(self, text: str, images: Sequence[Image.Image]) -> list[ActiveConcept]:
        """Concepts named in the text or recognised in the photos of the latest user turn."""
        names = self.named_in(text)
        for image in images:
            names.extend(hit.name for hit in self.store.recognize(self.user_id, image))
        return [self.get_concept(name) for name in dict.fromkeys(names)]
