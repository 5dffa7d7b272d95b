"""LangChain tools and agent middleware over concept memory (`yollava_agent.tools`), and the
training queue they drive.

`ConceptMemoryMiddleware(store, queue)` adds the memory to any `create_agent` agent: concepts
named or shown in a turn reach its model, and the six concept tools act for the user of the
run's context (`ConceptMemoryContext`). `concept_tools(store, queue, user_id)` gives the six tools
of one user (`teach_concept`, `concept_status`, `list_concepts`, `forget_concept`,
`recognize_concepts`, `remember_fact`); `TrainingQueue` trains taught concepts in the background.
Shipped in the wheel as `yollava_agent.tools`.
"""

from yollava_agent.tools.concept_tools import (
    ConceptStatusTool,
    ForgetConceptTool,
    ListConceptsTool,
    RecognizeConceptsTool,
    RememberFactTool,
    TeachConceptTool,
    concept_tools,
    context_concept_tools,
)
from yollava_agent.tools.context import ConceptMemoryContext, MissingUserError
from yollava_agent.tools.middleware import ConceptMemoryMiddleware
from yollava_agent.tools.queue import JobRunningError, TrainingJob, TrainingQueue

__all__ = [
    "ConceptMemoryContext",
    "ConceptMemoryMiddleware",
    "ConceptStatusTool",
    "ForgetConceptTool",
    "JobRunningError",
    "ListConceptsTool",
    "MissingUserError",
    "RecognizeConceptsTool",
    "RememberFactTool",
    "TeachConceptTool",
    "TrainingJob",
    "TrainingQueue",
    "concept_tools",
    "context_concept_tools",
]
