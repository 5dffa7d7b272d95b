"""What `ConceptMemoryMiddleware` adds to an agent turn with one photo, at 10 and 1,000 concepts.

One `create_agent` turn (a human message with one photo and a question, one model call) on a
fake chat model that answers at once, so the times are the agent's own work: with the
middleware, over a store where the user has 10 concepts and one where they have 1,000, against
the same turn on the same agent without it (same tools, same model) as the baseline, timed in
turns so that load from other work falls on all alike. The photo is one of bo's, so bo is
recognised and the note is built: the full path of a turn that involves a concept. Printed as a
markdown table: medians (and p95) in ms, the time added, and the ratio to the baseline; "of
which CLIP" is the embedding of the photo, "the rest" the other added time (decoding the photo,
the store's reads, the note).

The baseline is deliberately the cheapest possible turn: a real model's answer (hundreds of ms
to seconds) is not in it, so the ratio is an upper bound of the slowdown a user sees, and the
added milliseconds are the number to compare with one's own model.

CLIP is open_clip ViT-B-32 with random weights (`pretrained=None`): its cost is the real one, the
similarities are not. bo is taught from its photos through `add_concept`; the other concepts are
taught through `add_concept` too, with an embedder that returns random unit vectors (their
photos' pixels do not matter for the cost of a turn, and embedding 1,000 photos would take
minutes).

    python benchmarks/middleware_overhead.py                       # ViT-B-32, CPU, 1 thread
    python benchmarks/middleware_overhead.py --clip tiny --turns 5  # smoke run
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from PIL import Image

from store_latency import TimedEmbedder, machine
from synthetic import synthetic_photos
from yollava_agent.memory import ConceptStore
from yollava_agent.tools import ConceptMemoryContext, ConceptMemoryMiddleware
from yollava_agent.training.negatives import ClipConfig

USER = "main-user@example.com"
SYSTEM = "You are a helpful assistant."


class InstantChatModel(FakeMessagesListChatModel):
    """Answers at once; keeps the system message of the latest request, to check the note."""

    last_system: str = ""

    def bind_tools(self, tools: Any, **kwargs: Any) -> InstantChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        first = messages[0]
        self.last_system = first.text if isinstance(first, SystemMessage) else ""
        return super()._generate(messages, *args, **kwargs)


class RandomEmbedder:
    """Random unit vectors of the real embedder's size: teaches filler concepts fast."""

    def __init__(self, dim: int, seed: int) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(seed)

    def embed(self, images: list[Image.Image]) -> torch.Tensor:
        vectors = self.rng.standard_normal((len(images), self.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return torch.from_numpy(vectors)


def fill(store: ConceptStore, concepts: int, bo_photos: list[Image.Image]) -> float:
    """Teach bo from its photos and `concepts - 1` filler concepts; seconds taken."""
    start = time.perf_counter()
    store.add_concept(USER, "bo", bo_photos, description="a red ceramic mug")
    store.remember(USER, "bo", "bo was a birthday present from Ana")
    store.remember(USER, "bo", "bo's handle is chipped")
    real = store.embedder
    store.embedder = RandomEmbedder(real.dim, seed=concepts)  # type: ignore[assignment]
    filler = synthetic_photos(1, seed=3, size=32)
    try:
        for i in range(concepts - 1):
            store.add_concept(USER, f"c{i:04d}", filler, description=f"thing number {i}")
    finally:
        store.embedder = real
    return time.perf_counter() - start


def photo_turn(photo: Image.Image) -> dict[str, list[HumanMessage]]:
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    block = {
        "type": "image",
        "base64": base64.b64encode(buffer.getvalue()).decode(),
        "mime_type": "image/jpeg",
    }
    text = {"type": "text", "text": "What is this?"}
    return {"messages": [HumanMessage(content=[block, text])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip", default="ViT-B-32", help="open_clip model (random weights) or 'tiny'"
    )
    parser.add_argument("--concepts", type=int, nargs="+", default=[10, 1_000])
    parser.add_argument("--turns", type=int, default=30, help="timed turns per agent")
    parser.add_argument("--photo-size", type=int, default=768, help="side of the square photo, px")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_at_start = os.getloadavg()[0]
    clip = ClipConfig(model_name=args.clip, pretrained=None, device="cpu")
    bo_photos = synthetic_photos(4, seed=11, size=args.photo_size)
    turn = photo_turn(bo_photos[1])
    context = ConceptMemoryContext(user_id=USER)
    with tempfile.TemporaryDirectory(prefix="yollava-middleware-bench-") as tmp:
        model = InstantChatModel(responses=[AIMessage("That is bo.")])
        agents: dict[str, Callable[[], Any]] = {}
        timed: dict[str, TimedEmbedder] = {}
        fills: dict[str, float] = {}
        embedder = None  # one CLIP model in memory for every store of the run
        for count in args.concepts:
            store = ConceptStore(Path(tmp) / f"store-{count}", clip=clip)
            if embedder is not None:
                store.embedder = embedder
            embedder = store.embedder
            name = f"{count:,}"
            fills[name] = fill(store, count, bo_photos)
            timed[name] = TimedEmbedder(embedder)
            store.embedder = timed[name]  # type: ignore[assignment]
            memory = ConceptMemoryMiddleware(store)
            if not agents:  # the same agent without the middleware: same model, same tools
                plain = create_agent(model, tools=memory.tools, system_prompt=SYSTEM)
                agents["baseline"] = partial(plain.invoke, turn)
            agent = create_agent(
                model,
                middleware=[memory],
                system_prompt=SYSTEM,
                context_schema=ConceptMemoryContext,
            )
            agents[name] = partial(agent.invoke, turn, context=context)

        for name, run in agents.items():  # warm-up, not counted; and check the note is there
            for _ in range(3):
                run()
            noted = "The photo shows bo" in model.last_system
            if noted != (name != "baseline"):
                msg = f"{name}: the model got {model.last_system!r}"
                raise RuntimeError(msg)
        samples: dict[str, list[float]] = {name: [] for name in agents}
        clip_seconds: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.turns):
            for name, run in agents.items():
                if name in timed:
                    timed[name].seconds = 0.0
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
                if name in timed:
                    clip_seconds[name].append(timed[name].seconds)

    base = statistics.median(samples["baseline"])
    print(f"## ConceptMemoryMiddleware: time added to a turn with one photo ({args.clip}, CPU)\n")
    print(f"Machine: {machine(load_at_start)}.")
    print(
        f"One {args.photo_size}x{args.photo_size} JPEG per turn, {args.turns} timed turns per "
        f"agent, fake model that answers at once. Filling the stores took "
        + ", ".join(f"{s:.1f} s ({n} concepts)" for n, s in fills.items())
        + ".\n"
    )
    print(
        "| agent | stored concepts | turn median (ms) | p95 (ms) | added vs baseline (ms) "
        "| ratio to baseline | of which CLIP (ms) | the rest (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, got in samples.items():
        median = statistics.median(got)
        p95 = float(np.percentile(got, 95))
        if name == "baseline":
            times = f"{median * 1e3:.1f} | {p95 * 1e3:.1f}"
            print(f"| no middleware | – | {times} | – | 1.00x | – | – |")
            continue
        embed = statistics.median(clip_seconds[name])
        print(
            f"| ConceptMemoryMiddleware | {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | "
            f"{(median - base) * 1e3:.1f} | {median / base:.2f}x | {embed * 1e3:.1f} | "
            f"{(median - base - embed) * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
