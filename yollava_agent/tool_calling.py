"""Tool calling by prompt: LLaVA checkpoints have no native tool format, so we write one.

Bound tools are described in a system turn with their JSON schemas, and the model is asked to
answer with one JSON object `{"name": ..., "arguments": {...}}` to call a tool. The answer is
searched for such an object naming a bound tool; anything else is a plain answer. History renders
tool calls back as that JSON and tool results as user text, so multi-step agents keep working.

This is as reliable as the base model is at following the instruction: a 7B LLaVA often is, the
random `tiny` model never. Not done: constrained decoding to force valid JSON.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import ToolCall


def tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    """Names of tools in OpenAI format."""
    return [tool["function"]["name"] for tool in tools]


def tools_instruction(tools: Sequence[dict[str, Any]], tool_choice: str | None) -> str:
    """The system text that describes the bound tools and how to call them."""
    lines = ["You can call these tools:"]
    for tool in tools:
        function = tool["function"]
        schema = json.dumps(function.get("parameters", {}), sort_keys=True)
        lines.append(f"- {function['name']}: {function.get('description', '')} Arguments: {schema}")
    lines.append(
        'To call a tool, answer with only a JSON object: {"name": "<tool name>", "arguments": '
        "{...}}."
    )
    names = tool_names(tools)
    if tool_choice in names:
        lines.append(f"You must call the tool {tool_choice}.")
    elif tool_choice in ("any", "required"):
        lines.append("You must call one of the tools.")
    else:
        lines.append("If no tool is needed, answer normally.")
    return "\n".join(lines)


def parse_tool_calls(text: str, allowed: Sequence[str]) -> list[ToolCall]:
    """Tool calls written in `text` as JSON objects naming one of the `allowed` tools."""
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict) and value.get("name") in allowed:
            arguments = value.get("arguments", value.get("args", value.get("parameters", {})))
            if isinstance(arguments, dict):
                calls.append(
                    ToolCall(
                        name=value["name"],
                        args=arguments,
                        id=f"call_{uuid.uuid4().hex[:24]}",
                        type="tool_call",
                    )
                )
        position = text.find("{", end)
    return calls


def render_tool_calls(calls: Sequence[ToolCall]) -> str:
    """Tool calls of an earlier assistant turn, as the JSON the model was asked to write."""
    return "\n".join(json.dumps({"name": c["name"], "arguments": c["args"]}) for c in calls)
