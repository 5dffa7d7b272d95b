"""Long-term concept memory (`yollava_agent.memory`): the Chroma-backed concept store.

Shipped inside the wheel as `yollava_agent.memory`. The store arrives with the memory issue; it
will implement `yollava_agent.ConceptSource` so the chat model can use it without importing it.
"""
