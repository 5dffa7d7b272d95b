"""LangChain tools over concept memory (`yollava_agent.tools`): teach, list, forget, recognise.

Shipped inside the wheel as `yollava_agent.tools`. The tools arrive with the memory issue.
"""
