"""`ChatYoLLaVA`: a LangChain chat model that answers with a LLaVA and the user's personal concepts.

Each call renders the LangChain messages into the checkpoint's chat template (photos from
multimodal content blocks), works out which concepts are active (the configured ones, names passed
per call, and whatever the concept source finds in the latest user turn), injects their tokens,
places their prompts in the latest user turn and generates. The model loads lazily on first use and
is shared by every instance with the same model, device and dtype; a lock serialises turns on it,
since injecting concepts changes the shared tokenizer and embedding matrices.

Tool calling is by prompt (`tool_calling.py`), enough for `langchain.agents.create_agent` to drive
it. Not done: batching several conversations into one `generate` call.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from PIL import Image
from pydantic import ConfigDict, Field, InstanceOf, field_validator
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from yollava_agent.concept import Concept
from yollava_agent.errors import UnknownConceptError, UnsupportedMessageError
from yollava_agent.images import image_from_block, is_image_block
from yollava_agent.loading import default_model, resolve_device, shared_runtime
from yollava_agent.prompts import Turn, render_answer, with_concepts
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept, ConceptSource
from yollava_agent.tool_calling import (
    parse_tool_calls,
    render_tool_calls,
    tool_names,
    tools_instruction,
)

logger = logging.getLogger(__name__)

# Longest tail of generated text that may still be the start of a concept token or stop string.
_HOLD_BACK_CHARS = 48


def _text_block(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def message_to_turn(message: BaseMessage, images: list[Image.Image]) -> Turn:
    """One LangChain message as a chat-template turn; its photos are appended to `images`."""
    if isinstance(message, ToolMessage):
        name = message.name or "tool"
        return {"role": "user", "content": [_text_block(f"Result of {name}: {message.text}")]}
    roles = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
    role = next((r for cls, r in roles.items() if isinstance(message, cls)), None)
    if role is None:
        msg = (
            f"Message type {type(message).__name__} (role {message.type!r}) is not supported: "
            "send SystemMessage, HumanMessage, AIMessage or ToolMessage."
        )
        raise UnsupportedMessageError(msg)
    raw = message.content
    blocks: list[Any] = [raw] if isinstance(raw, str) else list(raw)
    content: list[dict[str, str]] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            block = str(block.get("text", ""))
        if isinstance(block, str):
            if block:  # an answer that only called tools has empty text
                content.append(_text_block(block))
        elif is_image_block(block) and role == "user":
            images.append(image_from_block(block))
            content.append({"type": "image"})
        elif role == "assistant":
            continue  # reasoning, tool-call and other output blocks of earlier answers
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            msg = (
                f"Content block of type {kind!r} in a {type(message).__name__} is not supported: "
                "send text, and photos as image blocks in human messages."
            )
            raise UnsupportedMessageError(msg)
    if isinstance(message, AIMessage) and message.tool_calls:
        content.append(_text_block(render_tool_calls(message.tool_calls)))
    return {"role": role, "content": content}


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _settled_ids(tokenizer: Any, ids: list[int]) -> list[int]:
    """The ids whose text later tokens cannot change.

    Byte-fallback pieces (`<0xE2>`) decode together with the byte pieces that follow them, so a
    trailing run of them is held back until a regular token closes it.
    """
    end = len(ids)
    while end and _BYTE_PIECE.fullmatch(tokenizer.convert_ids_to_tokens(ids[end - 1]) or ""):
        end -= 1
    return ids[:end]


class _StopCondition(StoppingCriteria):
    """Stops generation at a stop string, or when the caller cancels."""

    def __init__(self, tokenizer: Any, prompt_length: int, stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop = list(stop)
        self.cancelled = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = self.cancelled.is_set()
        if self.stop and not done:
            text = self.tokenizer.decode(input_ids[0, self.prompt_length :])
            done = any(s in text for s in self.stop)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _QueueStreamer(BaseStreamer):
    """Hands generated token ids to the consuming thread; `generate` puts the prompt first."""

    END = object()

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(self.END)


@dataclass
class _Turn:
    """A prepared turn: model inputs and what is needed to read the answer."""

    inputs: dict[str, torch.Tensor]
    concept_names: list[str]
    stop: list[str]
    tools: list[dict[str, Any]]
    generation_kwargs: dict[str, Any]

    @property
    def prompt_length(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


class ChatYoLLaVA(BaseChatModel):
    """LLaVA chat model with Yo'LLaVA personal concepts.

    Example:
        ```python
        from langchain_core.messages import HumanMessage
        from yollava_agent import ChatYoLLaVA, Concept

        bo = Concept.from_pretrained("concepts/bo")
        chat = ChatYoLLaVA(model="llava-hf/llava-1.5-7b-hf", concepts=[bo])
        photo = {"type": "image", "path": "photos/park.jpg"}
        chat.invoke([HumanMessage(content=[photo, {"type": "text", "text": "Is <bo> here?"}])])
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model: str | None = None
    """Checkpoint: a hub id, a local folder or 'tiny'; None picks the default for the device."""
    device: str | None = None
    """Torch device ('cpu', 'cuda', 'cuda:1'); None uses a GPU when there is one."""
    dtype: str | None = None
    """Weights dtype ('bf16', 'fp16', 'fp32'); None is bf16 on a GPU and fp32 on the CPU."""
    max_new_tokens: int = Field(default=256, alias="max_tokens", gt=0)
    """Most tokens generated per answer (`max_tokens` is accepted too)."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature; 0 decodes greedily."""
    stop: list[str] | None = None
    """Strings that end an answer; they are cut from it."""
    seed: int | None = None
    """Seed for sampling when temperature > 0, for repeatable answers."""
    concepts: list[InstanceOf[ActiveConcept]] = Field(default_factory=list)
    """Concepts active in every answer: `Concept` artifacts, concept folders or `ActiveConcept`s."""
    concept_source: InstanceOf[ConceptSource] | None = None
    """Long-term memory to resolve concept names and auto-activate concepts (see `ConceptSource`)."""

    @field_validator("concepts", mode="before")
    @classmethod
    def _load_concepts(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        active = []
        for item in value:
            if isinstance(item, str | Path):
                item = Concept.from_pretrained(item)
            active.append(ActiveConcept.from_concept(item) if isinstance(item, Concept) else item)
        return active

    @property
    def _llm_type(self) -> str:
        return "yollava"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
        }

    @property
    def model_name(self) -> str:
        """The checkpoint this model uses, with the default resolved."""
        return self.model or default_model(resolve_device(self.device))

    @property
    def runtime(self) -> LlavaRuntime:
        """The loaded base model (loaded on first use, shared between instances)."""
        return shared_runtime(self.model, self.device, self.dtype)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="yollava",
            ls_model_name=kwargs.get("model", self.model_name),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; the model calls them by answering with a JSON object (see module docs).

        `tool_choice`: None or "auto" lets the model decide, "any"/"required" asks it to call
        one, a tool name asks for that tool.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = tool_names(formatted)
        if tool_choice not in (None, "auto", "any", "required", *names):
            msg = f"tool_choice {tool_choice!r} is not 'auto', 'any', 'required' or one of {names}."
            raise ValueError(msg)
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_mode", "json_schema"] = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Answers parsed into `schema`, through a forced call of a tool with that schema.

        Every `method` uses the same prompt-based tool call, and `strict` is not enforced: the
        model has no constrained decoding, so a weak base can still produce an invalid object.
        """
        if kwargs:
            msg = f"Unsupported arguments for with_structured_output: {sorted(kwargs)}."
            raise ValueError(msg)
        tool = convert_to_openai_tool(schema)
        name = tool["function"]["name"]
        llm = self.bind_tools([schema], tool_choice=name)
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            parser: Runnable = PydanticToolsParser(tools=[schema], first_tool_only=True)
        else:
            parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        if not include_raw:
            return llm | parser

        def parse_with_raw(message: AIMessage) -> dict[str, Any]:
            try:
                return {"raw": message, "parsed": parser.invoke(message), "parsing_error": None}
            except Exception as e:  # noqa: BLE001 - include_raw reports every parsing error
                return {"raw": message, "parsed": None, "parsing_error": e}

        return llm | RunnableLambda(parse_with_raw)

    def active_concepts(
        self, text: str, images: Sequence[Image.Image], requested: Sequence[str] = ()
    ) -> list[ActiveConcept]:
        """Concepts for a turn: configured ones, `requested` names, and the source's finds."""
        found = {active.name: active for active in self.concepts}
        for name in requested:
            if name in found:
                continue
            if self.concept_source is None:
                msg = (
                    f"Unknown concept {name!r}: this chat model has concepts {sorted(found)} "
                    "and no concept source to look it up in."
                )
                raise UnknownConceptError(msg)
            found[name] = self.concept_source.get_concept(name)
        if self.concept_source is not None:
            for active in self.concept_source.concepts_for(text, images):
                found.setdefault(active.name, active)
        return list(found.values())

    def _prepare(
        self,
        runtime: LlavaRuntime,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> _Turn:
        images: list[Image.Image] = []
        conversation: list[Turn] = []
        human_index: int | None = None
        human_images: list[Image.Image] = []
        for message in messages:
            first_image = len(images)
            conversation.append(message_to_turn(message, images))
            if isinstance(message, HumanMessage):
                human_index, human_images = len(conversation) - 1, images[first_image:]
        human_text = "" if human_index is None else " ".join(
            b["text"] for b in conversation[human_index]["content"] if b["type"] == "text"
        )
        active = self.active_concepts(human_text, human_images, kwargs.get("concepts", ()))
        runtime.set_concepts(a.concept for a in active if a.concept is not None)
        conversation = with_concepts(conversation, active, human_index)
        tools = kwargs.get("tools") or []
        if tools:
            instruction = tools_instruction(tools, kwargs.get("tool_choice"))
            conversation.insert(0, {"role": "system", "content": [_text_block(instruction)]})
        prompt = runtime.processor.apply_chat_template(conversation, add_generation_prompt=True)
        # The turn's photos as one sample's: OneVision then treats several photos as a multi-image
        # input (no tiling), as its checkpoints expect.
        photos = [images] if images else None
        inputs = runtime.processor(text=prompt, images=photos, return_tensors="pt")
        inputs = {k: v.to(runtime.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(runtime.dtype)
        temperature = float(kwargs.get("temperature", self.temperature))
        generation_kwargs: dict[str, Any] = {
            "max_new_tokens": int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            "do_sample": temperature > 0,
            "pad_token_id": runtime.tokenizer.pad_token_id or runtime.tokenizer.eos_token_id,
        }
        # Latent tokens only describe a concept, and '<image>' only marks photo slots: an answer
        # never contains them.
        never = [runtime.processor.tokenizer.convert_tokens_to_ids(runtime.processor.image_token)]
        for name in runtime.injected:
            never.extend(runtime.token_ids(name)[1:])
        generation_kwargs["suppress_tokens"] = never
        if temperature > 0:
            generation_kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
        return _Turn(
            inputs=inputs,
            concept_names=[a.name for a in active if a.concept is not None],
            stop=list(stop or self.stop or []),
            tools=tools,
            generation_kwargs=generation_kwargs,
        )

    def _decode(self, runtime: LlavaRuntime, turn: _Turn, ids: Sequence[int]) -> str:
        text = runtime.tokenizer.decode(list(ids), skip_special_tokens=True)
        for stop in turn.stop:
            text = text.split(stop, 1)[0]
        return render_answer(text, turn.concept_names).strip()

    def _seed(self) -> None:
        if self.seed is not None:
            torch.manual_seed(self.seed)

    def _message(self, runtime: LlavaRuntime, turn: _Turn, new_ids: Sequence[int]) -> AIMessage:
        text = self._decode(runtime, turn, new_ids)
        calls = parse_tool_calls(text, tool_names(turn.tools)) if turn.tools else []
        return AIMessage(
            content="" if calls else text,
            tool_calls=calls,
            usage_metadata={
                "input_tokens": turn.prompt_length,
                "output_tokens": len(new_ids),
                "total_tokens": turn.prompt_length + len(new_ids),
            },
            response_metadata={"model_name": self.model_name, "model_provider": "yollava"},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        runtime = self.runtime
        with runtime.lock:
            turn = self._prepare(runtime, messages, stop, kwargs)
            condition = _StopCondition(runtime.tokenizer, turn.prompt_length, turn.stop)
            self._seed()
            with torch.inference_mode():
                output = runtime.model.generate(
                    **turn.inputs,
                    **turn.generation_kwargs,
                    stopping_criteria=StoppingCriteriaList([condition]),
                )
            new_ids = output[0, turn.prompt_length :].tolist()
            message = self._message(runtime, turn, new_ids)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        runtime = self.runtime
        with runtime.lock:
            turn = self._prepare(runtime, messages, stop, kwargs)
            condition = _StopCondition(runtime.tokenizer, turn.prompt_length, turn.stop)
            streamer = _QueueStreamer()
            failure: list[BaseException] = []

            def generate() -> None:
                try:
                    with torch.inference_mode():
                        runtime.model.generate(
                            **turn.inputs,
                            **turn.generation_kwargs,
                            stopping_criteria=StoppingCriteriaList([condition]),
                            streamer=streamer,
                        )
                except BaseException as e:  # noqa: BLE001 - re-raised in the consuming thread
                    failure.append(e)
                    streamer.end()

            self._seed()
            worker = threading.Thread(target=generate, name="yollava-generate", daemon=True)
            worker.start()
            new_ids: list[int] = []
            shown = ""
            try:
                while (item := streamer.queue.get()) is not _QueueStreamer.END:
                    new_ids.extend(item)
                    if turn.tools:
                        continue  # a tool call is only known once the answer is complete
                    settled = _settled_ids(runtime.tokenizer, new_ids)
                    visible = self._stable_prefix(self._decode(runtime, turn, settled), turn.stop)
                    if visible.startswith(shown) and len(visible) > len(shown):
                        piece, shown = visible[len(shown) :], visible
                        if run_manager:
                            run_manager.on_llm_new_token(piece)
                        yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            finally:
                condition.cancelled.set()
                worker.join()
            if failure:
                raise failure[0]
            final = self._message(runtime, turn, new_ids)
        rest = final.text[len(shown) :] if final.text.startswith(shown) else ""
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(final.tool_calls)
        ]
        if rest and run_manager:
            run_manager.on_llm_new_token(rest)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content=rest,
                tool_call_chunks=chunks,
                usage_metadata=final.usage_metadata,
                response_metadata=final.response_metadata,
                chunk_position="last",
            )
        )

    @staticmethod
    def _stable_prefix(text: str, stop: Sequence[str]) -> str:
        """The part of a partial answer that later tokens cannot change."""
        tail_start = max(0, len(text) - _HOLD_BACK_CHARS)
        opening = text.rfind("<", tail_start)
        if opening != -1 and ">" not in text[opening:]:
            text = text[:opening]  # maybe the start of a concept token
        text = text.rstrip("\ufffd")  # an incomplete UTF-8 character of a byte-level BPE
        for s in stop:
            for size in range(len(s) - 1, 0, -1):
                if text.endswith(s[:size]):
                    return text[:-size]
        return text

