"""Test setup: offline, a temporary HOME and data folder, and the tiny model built once per session;
the `chroma_server` fixture starts real `chroma run` servers on 127.0.0.1.

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

import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
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


# ---- holding training jobs at their first step


class Gate:
    """Holds every training job at its first step until `open()` or the job's cancellation."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Every `TrainingQueue` thread's job waits at its first training step (see `Gate`)."""
    import yollava_agent.tools.queue as queue_module

    held = Gate()
    real_teach = queue_module.teach

    def gated_teach(*args: Any) -> Path:
        # The queue calls teach(runtime, name, photos, out_dir, pool, config, description,
        # on_event, cancel): wrap on_event.
        *head, on_event, cancel = args

        def event(progress: Any) -> None:
            on_event(progress)
            held.started.set()
            while not held.opened.is_set() and not cancel.is_set():
                held.opened.wait(0.01)

        return real_teach(*head, event, cancel)

    monkeypatch.setattr(queue_module, "teach", gated_teach)
    yield held
    held.open()

# ---- a real Chroma server on 127.0.0.1 (tests of the store on a server, and of replicas)

HOST = "127.0.0.1"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
_CHROMA_SCRIPT = Path(sys.executable).parent / "chroma"
CHROMA = (
    [str(_CHROMA_SCRIPT)]
    if _CHROMA_SCRIPT.is_file()
    # A venv that borrows chromadb from another one has no script of its own: run chromadb's CLI.
    else [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.exit(app())"]
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class ChromaServer:
    """A `chroma run` process started by the `chroma_server` fixture."""

    path: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test paused it
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def chroma_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ChromaServer]]:
    """Start `chroma run` servers; every one of them is terminated when the test ends."""
    # Loopback traffic must never go through a proxy (httpx honours these variables).
    for variable in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", f"{HOST},localhost")
    started: list[ChromaServer] = []

    def start(path: Path | None = None, port: int | None = None) -> ChromaServer:
        path = path or tmp_path / "server-db"
        port = port or free_port()
        log = tmp_path / f"chroma-{port}-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*CHROMA, "run", "--path", str(path), "--host", HOST, "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ.copy(),  # HOME is the tests' temporary one
            )
        server = ChromaServer(path, port, process, log)
        started.append(server)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"`chroma run` exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
                )
            try:
                if (
                    httpx.get(f"http://{HOST}:{port}/api/v2/heartbeat", timeout=2).status_code
                    == 200
                ):
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"`chroma run` on {HOST}:{port} was not ready after {READY_TIMEOUT_S:.0f} s:\n"
                    f"{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.1)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
