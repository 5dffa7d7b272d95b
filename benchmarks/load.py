"""Load test of the app: N simulated users chatting through its handlers while their concepts train.

For each N (default 1, 4 and 16) a fresh app on a fresh data folder, built as `yollava ui` builds
it: the chat model, the store (embedded Chroma), the training queue (its thread) and the
conversation database. Each user runs in a thread of its own (Gradio runs handlers on worker
threads): it teaches a concept of its own with `/teach` and three photos (the concept then trains
in the queue's thread during the run), and once every user has, takes `--turns` turns through
`respond`, one after the other with no pause (a closed loop, the hardest load N users can make),
alternating a text turn (naming its concept, and another user's concept name, which must activate
nothing) and a photo turn (one of its concept's photos attached, which must be recognised).

Printed per N, as a markdown table: turns, wall time, turns per second, turn latency p50 / p95
(submission to the last streamed update) and its ratio to the first row (N = 1), the first
streamed update p50, and the shared model's lock per turn: how long the turn held it (p50, text
and photo turns apart; the turn's serialised part), the CPU time its thread used meanwhile (below
the hold: it waited for a core or for Python's GIL), and how long the concept memory took
(naming, CLIP recognition and the store's reads, which run before the lock is taken), how long the
turn waited for the lock, and the rest of the turn (its work outside the lock: the concept memory,
the upload's copy, the conversation's reads and writes); and the concepts whose training finished during the run
(`--no-train` cancels each job once taught, to see the chat alone). Then the checks, which
fail the run: every user's stored conversation is exactly what their handlers showed them, turn
after turn (nothing lost or reordered); no conversation holds another user's words; every turn's
active concepts were the user's own concept and nothing else.

The chat model is the offline tiny LLaVA (random weights: answers are noise, and an answer costs
what the tiny model costs; `--model` for a real checkpoint). CLIP is open_clip ViT-B-32 with
random weights, whose cost is the real one. One torch thread.

    python benchmarks/load.py                              # N = 1, 4, 16; 8 turns each
    python benchmarks/load.py --users 2 --turns 2 --clip tiny   # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch

import yollava_agent.ui.app as app_module
from store_latency import machine
from synthetic import synthetic_photos
from yollava_agent import ChatYoLLaVA
from yollava_agent.memory import ConceptStore, StoreConceptSource
from yollava_agent.sources import ActiveConcept
from yollava_agent.tools.queue import TrainingQueue
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig
from yollava_agent.ui import AppContext, load_conversation, respond, run_command

PHOTOS_PER_CONCEPT = 3


class TimedLock:
    """The shared model's lock, timing each outermost hold and the wait before it, per thread."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.local = threading.local()
        self.holds: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        """CPU time of the holding thread during each hold: below the hold, it waited to run."""
        self.waits: dict[str, list[float]] = {}

    def __enter__(self) -> TimedLock:
        depth = getattr(self.local, "depth", 0)
        asked = time.perf_counter()
        self.inner.acquire()
        if depth == 0:
            self.local.start, self.local.cpu = time.perf_counter(), time.thread_time()
            self.local.waited = self.local.start - asked
        self.local.depth = depth + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.local.depth -= 1
        if self.local.depth == 0:
            turn = getattr(self.local, "turn", "")
            self.holds.setdefault(turn, []).append(time.perf_counter() - self.local.start)
            self.cpu.setdefault(turn, []).append(time.thread_time() - self.local.cpu)
            self.waits.setdefault(turn, []).append(self.local.waited)
        self.inner.release()


@dataclass
class SourceLog:
    """What the concept memory activated on each turn, and how long it took."""

    active: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lock: TimedLock | None = None


LOG = SourceLog()


class RecordingSource(StoreConceptSource):
    """The app's concept source, recording each turn's active concepts (keyed by the turn's tag)."""

    def concepts_for(self, text: str, images: Sequence[Any]) -> list[ActiveConcept]:
        start = time.perf_counter()
        found = super().concepts_for(text, images)
        tag = text.partition("]")[0] + "]"
        LOG.active[tag] = [c.name for c in found]
        LOG.seconds[tag] = time.perf_counter() - start
        if LOG.lock is not None:
            LOG.lock.local.turn = tag  # on the generating thread, which takes the lock next
        return found


@dataclass
class Turn:
    user: str
    tag: str
    photo: bool
    latency: float
    first_update: float


@dataclass
class Row:
    users: int
    turns: list[Turn]
    wall: float
    holds: dict[str, float]
    """Per turn tag: how long the turn held the model's lock."""
    cpu: dict[str, float]
    """Per turn tag: the CPU time its generating thread used while holding the lock."""
    memory: dict[str, float]
    """Per turn tag: how long the concept memory took (before the lock)."""
    waits: dict[str, float]
    trained: int
    checks: list[str]

    def outside(self, turn: Turn) -> float:
        """The turn's time neither waiting for nor holding the lock."""
        return turn.latency - self.waits[turn.tag] - self.holds[turn.tag]

    def median(self, of: dict[str, float], photo: bool) -> float:
        return statistics.median(of[t.tag] for t in self.turns if t.photo == photo and t.tag in of)


def make_app(folder: Path, args: argparse.Namespace) -> AppContext:
    store = ConceptStore(folder, clip=ClipConfig(model_name=args.clip))
    config = TrainingConfig(epochs=args.epochs, batch_size=8)
    return AppContext(
        chat_model=ChatYoLLaVA(model=args.model, device="cpu", max_new_tokens=args.max_tokens),
        store=store,
        queue=TrainingQueue(store, args.model, "cpu", config=config),
        history_url=f"sqlite:///{folder / 'chats.sqlite'}",
        uploads=folder / "uploads",
    )


def user_photos(folder: Path, index: int) -> list[str]:
    paths = []
    for k, photo in enumerate(synthetic_photos(PHOTOS_PER_CONCEPT, seed=1000 + index)):
        path = folder / f"user{index:02d}-{k}.png"
        photo.save(path)
        paths.append(str(path))
    return paths


def run(n: int, args: argparse.Namespace) -> Row:
    with tempfile.TemporaryDirectory(prefix=f"yollava-load-{n}-") as folder:
        return run_in(Path(folder), n, args)


def run_in(folder: Path, n: int, args: argparse.Namespace) -> Row:
    ctx = make_app(folder / "data", args)
    (folder / "photos").mkdir()
    photos = [user_photos(folder / "photos", i) for i in range(n)]
    runtime = ctx.chat_model.runtime
    lock = TimedLock(getattr(runtime.lock, "inner", runtime.lock))  # one wrapper, whatever the N
    runtime.lock = lock  # type: ignore[assignment]
    LOG.lock = lock
    # Warm-up (not timed): the model's and CLIP's first calls.
    list(respond(ctx, "warm-up", {"text": "[warm-up] hello", "files": []}, []))
    started: list[float] = []
    ready = threading.Barrier(n, action=lambda: started.append(time.perf_counter()))
    turns: list[Turn] = []
    shown: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []

    def simulate(i: int) -> None:
        user, own, other = f"user{i:02d}", f"c{i:02d}", f"c{(i + 1) % max(n, 2):02d}"
        reply = run_command(ctx, user, f"/teach {own} a thing of {user}", photos[i])
        if not reply.startswith(f"Taught {own!r}"):
            problems.append(f"{user} could not teach: {reply}")
        if args.no_train:
            ctx.queue.cancel(user, own)
        ready.wait()
        chat: list[dict[str, Any]] = []
        for k in range(args.turns):
            tag, photo = f"[{user} t{k}]", k % 2 == 1
            message = (
                {"text": f"{tag} Who is in this photo?", "files": [photos[i][k % len(photos[i])]]}
                if photo
                else {"text": f"{tag} How is {own} today? And {other}?", "files": []}
            )
            start, first = time.perf_counter(), None
            for update in respond(ctx, user, message, chat):
                first = first if first is not None else time.perf_counter() - start
            turns.append(Turn(user, tag, photo, time.perf_counter() - start, first or 0.0))
            chat = update
        shown[user] = chat

    threads = [threading.Thread(target=simulate, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started[0]
    trained = sum(
        ctx.store.get_concept(f"user{i:02d}", f"c{i:02d}").status == "ready" for i in range(n)
    )
    ctx.queue.close()
    problems.extend(check(ctx, n, args.turns, shown))
    return Row(
        users=n,
        turns=turns,
        wall=wall,
        holds={tag: sum(held) for tag, held in lock.holds.items()},
        cpu={tag: sum(used) for tag, used in lock.cpu.items()},
        memory=dict(LOG.seconds),
        waits={tag: sum(waited) for tag, waited in lock.waits.items()},
        trained=trained,
        checks=problems,
    )


def check(ctx: AppContext, n: int, turns: int, shown: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Nothing lost, nothing leaked: the problems found (none when all is well)."""
    problems = []
    for i in range(n):
        user, own = f"user{i:02d}", f"c{i:02d}"
        stored = load_conversation(ctx, user)
        expected_entries = sum(3 if k % 2 else 2 for k in range(turns))
        if stored != shown.get(user) or len(stored) != expected_entries:
            problems.append(
                f"{user}: the stored conversation ({len(stored)} entries) is not what was shown "
                f"({len(shown.get(user, []))}; expected {expected_entries})"
            )
        for entry in stored:
            text = entry["content"] if isinstance(entry["content"], str) else ""
            if entry["role"] == "user" and text and not text.startswith(f"[{user} t"):
                problems.append(f"{user}'s conversation holds someone else's words: {text!r}")
        for k in range(turns):
            active = LOG.active.get(f"[{user} t{k}]")
            if active != [own]:
                problems.append(f"{user} turn {k}: active concepts {active}, expected [{own!r}]")
    return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


COLUMNS = (
    "users", "turns", "wall s", "turns/s", "p50 ms", "p95 ms", "p50 vs first row",
    "first update p50 ms", "lock held p50 ms, text / photo", "its CPU time, text / photo",
    "concept memory, text / photo",
    "lock wait p50 ms", "outside the lock p50 ms", "trained", "checks",
)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


def table(rows: list[Row]) -> str:
    base = statistics.median(t.latency for t in rows[0].turns)
    lines = [f"| {' | '.join(COLUMNS)} |", "|" + " ---: |" * (len(COLUMNS) - 1) + " --- |"]
    for row in rows:
        latencies = [t.latency for t in row.turns]
        p50 = statistics.median(latencies)
        cells = [
            str(row.users),
            str(len(row.turns)),
            f"{row.wall:.1f}",
            f"{len(row.turns) / row.wall:.1f}",
            ms(p50),
            ms(percentile(latencies, 0.95)),
            f"{p50 / base:.1f}x",
            ms(statistics.median(t.first_update for t in row.turns)),
            " / ".join(ms(row.median(row.holds, photo)) for photo in (False, True)),
            " / ".join(ms(row.median(row.cpu, photo)) for photo in (False, True)),
            " / ".join(ms(row.median(row.memory, photo)) for photo in (False, True)),
            ms(statistics.median(row.waits[t.tag] for t in row.turns)),
            ms(statistics.median(row.outside(t) for t in row.turns)),
            f"{row.trained}/{row.users}",
            f"{len(row.checks)} FAILED" if row.checks else "ok",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--turns", type=int, default=8, help="turns per user (half with a photo)")
    parser.add_argument("--model", default="tiny", help="chat and training model")
    parser.add_argument(
        "--clip", default="ViT-B-32", help="open_clip model (random weights) or 'tiny'"
    )
    parser.add_argument("--max-tokens", type=int, default=16, help="longest answer")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per concept")
    parser.add_argument(
        "--no-train", action="store_true", help="cancel each concept's training once taught"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    app_module.StoreConceptSource = RecordingSource  # type: ignore[misc]
    load = os.getloadavg()[0]
    rows = []
    for n in args.users:
        row = run(n, args)
        rows.append(row)
        for problem in row.checks:
            print(f"N={n}: {problem}")
    print(table(rows))
    print(
        f"\n{args.turns} turns per user, answers of at most {args.max_tokens} tokens on "
        f"{args.model}, CLIP {args.clip}, {'no training' if args.no_train else 'training'}; "
        f"{machine(load)}"
    )
    if any(row.checks for row in rows):
        raise SystemExit("Some checks failed (listed above).")


if __name__ == "__main__":
    main()
