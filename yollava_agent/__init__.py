"""yollava-agent: visual long-term memory of personal subjects for LangChain chat agents.

The core: loading a base LLaVA, concept artifacts and their injection, prompts, and the
`ChatYoLLaVA` chat model. Memory, tools and the UI live in `yollava_agent.memory`,
`yollava_agent.tools` and `yollava_agent.ui`; the core imports none of them.
"""

from yollava_agent.chat_model import ChatYoLLaVA
from yollava_agent.concept import BaseFingerprint, Concept, validate_concept_name
from yollava_agent.errors import (
    ConceptBaseMismatchError,
    ConceptConflictError,
    ConceptLoadError,
    ImageInputError,
    InvalidConceptNameError,
    ModelLoadError,
    PromptTooLongError,
    UnknownConceptError,
    UnsupportedMessageError,
    YoLLaVAError,
)
from yollava_agent.images import load_image
from yollava_agent.loading import load_llava, shared_runtime
from yollava_agent.prompts import concept_prompt
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept, ConceptSource

__all__ = [
    "ActiveConcept",
    "BaseFingerprint",
    "ChatYoLLaVA",
    "Concept",
    "ConceptBaseMismatchError",
    "ConceptConflictError",
    "ConceptLoadError",
    "ConceptSource",
    "ImageInputError",
    "InvalidConceptNameError",
    "LlavaRuntime",
    "ModelLoadError",
    "PromptTooLongError",
    "UnknownConceptError",
    "UnsupportedMessageError",
    "YoLLaVAError",
    "concept_prompt",
    "load_image",
    "load_llava",
    "shared_runtime",
    "validate_concept_name",
]
