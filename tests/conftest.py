"""Test setup: offline, a temporary HOME and data folder, and the tiny model built once per session.

The environment is set before anything imports huggingface_hub, which reads HF_HUB_OFFLINE at
import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="yollava-tests-"))
os.environ["HOME"] = str(_SESSION_HOME)
os.environ["YOLLAVA_HOME"] = str(_SESSION_HOME / "yollava")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("XDG_DATA_HOME", None)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from yollava_agent import Concept, LlavaRuntime, shared_runtime  # noqa: E402


HANG_SECONDS = 1800.0
"""How long a test waits for anything (a subprocess, a training job, a page) before calling it a
hang. A bound against hangs only, never a speed target: CI's two cores, shared with other jobs,
were seen six times slower than a quiet machine."""


REPO = Path(__file__).resolve().parents[1]


def run_python(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python ARGS...` in a new process from the repository root, as a user would run it."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
        check=False,
    )


@pytest.fixture
def runtime() -> Iterator[LlavaRuntime]:
    """The shared tiny runtime, with no concepts injected before or after the test."""
    tiny = shared_runtime("tiny", "cpu", "fp32")
    tiny.set_concepts([])
    yield tiny
    tiny.set_concepts([])


def make_concept(runtime: LlavaRuntime, name: str, seed: int = 0, scale: float = 0.02) -> Concept:
    """A concept with seeded random rows of the size real initial rows have (one set if tied)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (17, runtime.base.hidden_size)
    inputs = torch.randn(shape, generator=generator) * scale
    outputs = inputs if runtime.tied_embeddings else torch.randn(shape, generator=generator) * scale
    return Concept(name=name, input_embeddings=inputs, output_embeddings=outputs, base=runtime.base)


def make_photo(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A small solid-colour photo with a darker square, so flips and crops change it."""
    image = Image.new("RGB", size, color)
    image.paste((color[0] // 3, color[1] // 3, color[2] // 3), (4, 4, size[0] // 2, size[1] // 2))
    return image
