"""Long-term concept memory (`yollava_agent.memory`): the Chroma-backed concept store.

`ConceptStore` keeps users' concepts, their photos with CLIP embeddings, facts and the negative
pool; `StoreConceptSource` hands one user's concepts to `ChatYoLLaVA` as a `ConceptSource`.
"""

from yollava_agent.memory.source import StoreConceptSource
from yollava_agent.memory.store import (
    ConceptExistsError,
    ConceptRecord,
    ConceptStore,
    Fact,
    Recognition,
    StoreError,
    StoreUnavailableError,
    StoreWriteError,
    calibrate_threshold,
)

__all__ = [
    "ConceptExistsError",
    "ConceptRecord",
    "ConceptStore",
    "Fact",
    "Recognition",
    "StoreConceptSource",
    "StoreError",
    "StoreUnavailableError",
    "StoreWriteError",
    "calibrate_threshold",
]
