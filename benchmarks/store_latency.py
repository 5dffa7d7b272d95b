"""Instant-tier latency of the concept store: teach -> recognised, and recognise with many photos.

Two measurements, printed as markdown tables:

1. Seconds from `add_concept` (5 photo files) until `recognize` returns the concept, split into
   the CLIP embedding part (the 5 photos plus the query photo) and the store part (reading,
   hashing and copying photos, calibrating the threshold, Chroma writes and the query). Taught into
   an empty store and into the 10,000-photo store below (calibration then reads the user's photos).
2. `recognize` latency (median and p95 over --queries photos) with 10,000 stored concept photos,
   and with 1,000 as the baseline in the same run. The stored photos are random unit vectors put
   straight into the store's collections, tagged to many concepts of one user plus a few other
   users, so the query filters by user as in production; every query is a full `recognize` (CLIP
   embedding of the photo included).

CLIP is open_clip ViT-B-32 with random weights (`pretrained=None`): its cost is the real one, the
similarities are not (nothing downloads).

    python benchmarks/store_latency.py                        # ViT-B-32, CPU
    python benchmarks/store_latency.py --clip tiny --queries 10  # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from yollava_agent.memory import ConceptStore
from yollava_agent.memory.store import _record_id

from yollava_agent.training.negatives import ClipConfig
from synthetic import synthetic_photos

MAIN_USER = "main-user@example.com"
OTHER_USERS = [f"other-{i}@example.com" for i in range(4)]
TEMPLATE_USER = "template@example.com"
MAIN_SHARE = 0.8
"""Share of the stored photos that belong to the user who queries; the rest go to the others."""
PHOTOS_PER_CONCEPT = 8


class TimedEmbedder:
    """Wraps the store's embedder to add up the seconds spent in CLIP."""

    def __init__(self, embedder: object) -> None:
        self.inner = embedder
        self.seconds = 0.0

    def embed(self, images: list[Image.Image]) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self.inner.embed(images)  # type: ignore[attr-defined]
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def open_store(
    home: Path, clip: ClipConfig, shared: ConceptStore | None
) -> tuple[ConceptStore, TimedEmbedder]:
    store = ConceptStore(home=home, clip=clip)
    if shared is not None:  # one CLIP model in memory for every store of the run
        store.embedder = shared.embedder.inner  # type: ignore[attr-defined]
    timed = TimedEmbedder(store.embedder)
    store.embedder = timed  # type: ignore[assignment]
    return store, timed


def fill(store: ConceptStore, total: int, dim: int, seed: int) -> tuple[float, int, int]:
    """Put `total` random photo vectors (and their concepts) straight into the store's collections."""
    rng = np.random.default_rng(seed)
    main = int(total * MAIN_SHARE)
    owners = [(MAIN_USER, main)] + [
        (user, (total - main) // len(OTHER_USERS)) for user in OTHER_USERS
    ]
    owners[0] = (MAIN_USER, total - sum(n for _, n in owners[1:]))
    batch = store.client.get_max_batch_size()
    # The concept records copy the metadata of one concept added the normal way (another user),
    # so that they carry whatever fields the store's records have.
    store.add_concept(TEMPLATE_USER, "template", synthetic_photos(1, seed=seed, size=64))
    template = store.concepts.get(ids=[_record_id(TEMPLATE_USER, "template")])["metadatas"][0]
    start = time.perf_counter()
    main_concepts = 0
    for user, count in owners:
        vectors = rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        concepts = [f"c{i // PHOTOS_PER_CONCEPT:05d}" for i in range(count)]
        folder = store.concept_dir(user, "x").parent
        ids = [_record_id(user, concept, f"{i:08x}.jpg") for i, concept in enumerate(concepts)]
        metadatas = [
            {
                "user_id": user,
                "concept": concept,
                "path": str(folder / concept / "photos" / f"{i:08x}.jpg"),
            }
            for i, concept in enumerate(concepts)
        ]
        for at in range(0, count, batch):
            store.photos.add(
                ids=ids[at : at + batch],
                embeddings=vectors[at : at + batch],
                metadatas=metadatas[at : at + batch],
            )
        names = sorted(set(concepts))
        if user == MAIN_USER:
            main_concepts = len(names)
        centroids, records = [], []
        for name in names:
            rows = vectors[[i for i, c in enumerate(concepts) if c == name]]
            centroid = rows.mean(0)
            centroids.append(centroid / np.linalg.norm(centroid))
            record = dict(template, user_id=user, name=name, threshold=0.9, photo_count=len(rows))
            if "uid" in record:
                record["uid"] = uuid.uuid4().hex
            records.append(record)
        for at in range(0, len(names), batch):
            store.concepts.add(
                ids=[_record_id(user, name) for name in names[at : at + batch]],
                embeddings=centroids[at : at + batch],
                metadatas=records[at : at + batch],
            )
    return time.perf_counter() - start, owners[0][1], main_concepts


def teach_until_recognised(
    store: ConceptStore, timed: TimedEmbedder, files: list[Path], name: str
) -> dict[str, float]:
    timed.seconds = 0.0
    start = time.perf_counter()
    store.add_concept(MAIN_USER, name, files)
    added = time.perf_counter()
    tries = 0
    while name not in [r.name for r in store.recognize(MAIN_USER, files[0])]:
        tries += 1
        if tries > 100:
            msg = f"The instant tier never recognised {name!r}."
            raise RuntimeError(msg)
    done = time.perf_counter()
    return {
        "add": added - start,
        "recognize": done - added,
        "total": done - start,
        "embed": timed.seconds,
    }


def recognise_latency(
    stores: dict[int, tuple[ConceptStore, TimedEmbedder]], queries: list[Image.Image]
) -> dict[int, dict[str, float]]:
    """Time `recognize` on every store, taking turns query by query so that load from other work
    on the machine falls on all of them alike (the ratio column compares like with like)."""
    for store, _ in stores.values():
        for photo in queries[:3]:  # warm-up, not counted
            store.recognize(MAIN_USER, photo)
    samples: dict[int, dict[str, list[float]]] = {
        size: {"total": [], "store": [], "list": [], "query": []} for size in stores
    }
    # The two Chroma reads of a recognize, alone: the user's concept records and the photo query.
    vector = next(iter(stores.values()))[1].inner.embed([queries[0]])[0].numpy()  # type: ignore[attr-defined]
    counts = {
        size: min(sum(c.photo_count for c in store.list_concepts(MAIN_USER)), 256)
        for size, (store, _) in stores.items()
    }
    for photo in queries:
        for size, (store, timed) in stores.items():
            timed.seconds = 0.0
            start = time.perf_counter()
            store.recognize(MAIN_USER, photo)
            elapsed = time.perf_counter() - start
            samples[size]["total"].append(elapsed)
            samples[size]["store"].append(elapsed - timed.seconds)
            start = time.perf_counter()
            store.list_concepts(MAIN_USER)
            samples[size]["list"].append(time.perf_counter() - start)
            start = time.perf_counter()
            store.photos.query(
                query_embeddings=[vector],
                n_results=counts[size],
                where={"user_id": MAIN_USER},
                include=["metadatas", "distances"],
            )
            samples[size]["query"].append(time.perf_counter() - start)
    return {
        size: {
            "median": statistics.median(got["total"]),
            "p95": float(np.percentile(got["total"], 95)),
            "store_median": statistics.median(got["store"]),
            "store_p95": float(np.percentile(got["store"], 95)),
            "list": statistics.median(got["list"]),
            "query": statistics.median(got["query"]),
        }
        for size, got in samples.items()
    }


def machine(load_at_start: float) -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"chromadb {metadata.version('chromadb')}, Python {platform.python_version()}; "
        f"load average {load_at_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "(a load above the CPU count means other work shared the CPUs and inflated the times)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip", default="ViT-B-32", help="open_clip model name (random weights) or 'tiny'"
    )
    parser.add_argument("--photos", type=int, default=10_000, help="stored concept photos")
    parser.add_argument(
        "--baseline", type=int, default=1_000, help="stored concept photos of the baseline"
    )
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument(
        "--teach-runs", type=int, default=3, help="concepts taught per store (median shown)"
    )
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    clip = ClipConfig(model_name=args.clip, pretrained=None, device="cpu")
    with tempfile.TemporaryDirectory(prefix="yollava-store-bench-") as tmp:
        root = Path(tmp)
        files = []
        for run in range(args.teach_runs):
            for i, photo in enumerate(synthetic_photos(5, seed=100 + run)):
                files.append(root / "photos" / f"run{run}-{i}.jpg")
                files[-1].parent.mkdir(exist_ok=True)
                photo.save(files[-1], quality=90)
        queries = synthetic_photos(args.queries, seed=7)

        empty, empty_timed = open_store(root / "empty", clip, None)
        start = time.perf_counter()
        dim = empty.embedder.dim
        build = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(2):  # torch picks its kernels per batch shape on first use: a one-off too
            empty.embedder.embed(synthetic_photos(5, seed=1))
            empty.embedder.embed(queries[:1])
        warm_up = time.perf_counter() - start

        layout: dict[int, tuple[float, int, int]] = {}
        stores: dict[int, tuple[ConceptStore, TimedEmbedder]] = {}
        for total in (args.baseline, args.photos):
            stores[total] = open_store(root / f"store-{total}", clip, empty)
            layout[total] = fill(stores[total][0], total, dim, seed=total)
        latency = recognise_latency(stores, queries)

        # Taught in turns into the empty and the full store, for the same reason.
        teach: dict[str, list[dict[str, float]]] = {
            "empty store": [],
            f"{args.photos:,}-photo store": [],
        }
        for run in range(args.teach_runs):
            for label, (store, timed) in zip(
                teach, [(empty, empty_timed), stores[args.photos]], strict=True
            ):
                teach[label].append(
                    teach_until_recognised(
                        store, timed, files[5 * run : 5 * run + 5], f"taught{run}"
                    )
                )

    print(f"## Concept store latency ({args.clip}, random weights, CPU)\n")
    print(f"Machine: {machine(load_at_start)}.")
    print(
        f"CLIP model build {build:.2f} s and warm-up {warm_up:.2f} s (once per process, "
        "not counted below).\n"
    )
    print(f"### Teach -> recognised (5 photo files, median of {args.teach_runs} concepts)\n")
    print(
        "| taught into | add_concept (s) | first recognize (s) | teach -> recognised (s) | of which embedding (s) | of which store (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in teach.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(
            f"| {label} | {med['add']:.3f} | {med['recognize']:.3f} | {med['total']:.3f} | "
            f"{med['embed']:.3f} | {med['total'] - med['embed']:.3f} |"
        )
    print(f"\n### recognize latency ({args.queries} queries, full call incl. CLIP of the photo)\n")
    print(
        "| stored concept photos | querying user's photos / concepts | fill (s) | recognize median (ms) | p95 (ms) "
        "| store part median (ms) | store part p95 (ms) | median vs baseline | store part vs baseline "
        "| list_concepts alone (ms) | photo query alone (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = latency[args.baseline]
    for total in (args.baseline, args.photos):
        row, (fill_s, user_photos, user_concepts) = latency[total], layout[total]
        print(
            f"| {total:,} | {user_photos:,} / {user_concepts:,} | {fill_s:.1f} | {row['median'] * 1e3:.1f} | "
            f"{row['p95'] * 1e3:.1f} | {row['store_median'] * 1e3:.1f} | {row['store_p95'] * 1e3:.1f} | "
            f"{row['median'] / base['median']:.2f}x | {row['store_median'] / base['store_median']:.2f}x | "
            f"{row['list'] * 1e3:.1f} | {row['query'] * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
