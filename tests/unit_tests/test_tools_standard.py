"""LangChain's standard unit tests for tools, run on each of the six concept tools.

The tools need a store and a queue; one pair is built lazily in a temporary folder (tiny CLIP, no
model loaded until a job runs, and no job runs here) and shared by every class. The module
fixture closes the queue when the module's tests are done.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from yollava_agent.memory import ConceptStore
from yollava_agent.tools import (
    ConceptStatusTool,
    ForgetConceptTool,
    ListConceptsTool,
    RecognizeConceptsTool,
    RememberFactTool,
    TeachConceptTool,
    TrainingQueue,
)
from yollava_agent.training.negatives import ClipConfig

USER = "standard-tests-user"


@functools.cache
def _store_and_queue() -> tuple[ConceptStore, TrainingQueue]:
    home = Path(tempfile.mkdtemp(prefix="yollava-tool-std-"))
    store = ConceptStore(home, clip=ClipConfig(model_name="tiny"))
    return store, TrainingQueue(store, model="tiny", device="cpu", dtype="fp32")


@pytest.fixture(scope="module", autouse=True)
def _close_queue() -> Iterator[None]:
    yield
    if _store_and_queue.cache_info().currsize:
        _store_and_queue()[1].close()
        _store_and_queue.cache_clear()


def _bound(with_queue: bool) -> dict[str, Any]:
    store, queue = _store_and_queue()
    params: dict[str, Any] = {"store": store, "user_id": USER}
    if with_queue:
        params["queue"] = queue
    return params


class TestTeachConceptToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return TeachConceptTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=True)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"name": "bo", "photo_paths": ["bo1.jpg", "bo2.jpg"], "description": "a red mug"}


class TestConceptStatusToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return ConceptStatusTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=True)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"name": "bo"}


class TestListConceptsToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return ListConceptsTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=False)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {}


class TestForgetConceptToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return ForgetConceptTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=True)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"name": "bo"}


class TestRecognizeConceptsToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return RecognizeConceptsTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=False)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"photo_path": "park.jpg"}


class TestRememberFactToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return RememberFactTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _bound(with_queue=False)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"concept": "bo", "fact": "bo's birthday is May 3"}
