"""LangChain tools over concept memory (`yollava_agent.tools`), and the training queue they drive.

`concept_tools(store, queue, user_id)` gives the six tools of one user (`teach_concept`,
`concept_status`, `list_concepts`, `forget_concept`, `recognize_concepts`, `remember_fact`);
`TrainingQueue` trains taught concepts in the background. Shipped in the wheel as
`yollava_agent.tools`.
"""

from yollava_agent.tools.concept_tools import (
    ConceptStatusTool,
    ForgetConceptTool,
    ListConceptsTool,
    RecognizeConceptsTool,
    RememberFactTool,
    TeachConceptTool,
    concept_tools,
)
from yollava_agent.tools.queue import JobRunningError, TrainingJob, TrainingQueue

__all__ = [
    "ConceptStatusTool",
    "ForgetConceptTool",
    "JobRunningError",
    "ListConceptsTool",
    "RecognizeConceptsTool",
    "RememberFactTool",
    "TeachConceptTool",
    "TrainingJob",
    "TrainingQueue",
    "concept_tools",
]
