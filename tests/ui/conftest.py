"""Fixtures of the app tests: a context on the tiny model, tiny CLIP and a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yollava_agent import ChatYoLLaVA
from yollava_agent.memory import ConceptStore
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig
from yollava_agent.ui import AppContext

QUICK = TrainingConfig(
    epochs=3, batch_size=4, warmup_epochs=1, turns_per_positive=4, attribute_answer_tokens=4
)


def make_context(
    home: Path,
    config: TrainingConfig = QUICK,
    notice: str = "",
    *,
    chroma_port: int | None = None,
    **queue_options: Any,
) -> AppContext:
    """An app context on `home`: its embedded store, or the Chroma server on 127.0.0.1 at
    `chroma_port` (a replica); `queue_options` go to its `TrainingQueue`."""
    host = None if chroma_port is None else "127.0.0.1"
    store = ConceptStore(home, host=host, port=chroma_port or 8000, clip=ClipConfig(model_name="tiny"))
    return AppContext(
        chat_model=ChatYoLLaVA(model="tiny", device="cpu", dtype="fp32", max_new_tokens=6),
        store=store,
        queue=TrainingQueue(store, "tiny", "cpu", "fp32", config=config, **queue_options),
        history_url=f"sqlite:///{home / 'chats.sqlite'}",
        uploads=home / "uploads",
        notice=notice,
    )


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[AppContext]:
    context = make_context(tmp_path / "home")
    yield context
    context.queue.close()
