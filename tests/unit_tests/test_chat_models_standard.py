"""LangChain's standard unit tests for chat models, run on `ChatYoLLaVA`."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from yollava_agent import ChatYoLLaVA


class TestChatYoLLaVAStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatYoLLaVA]:
        return ChatYoLLaVA

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "tiny", "device": "cpu"}

    @property
    def supports_image_inputs(self) -> bool:
        return True
