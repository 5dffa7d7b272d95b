"""Time the whole Yo'LLaVA recipe for one concept and print a table per phase.

The public example's sizes: 4 positive photos with ~64 recognition turns, a pool of 214 other
photos from which 100 hard and 100 easy negatives are mined, 10 attribute questions per photo (40
text-only turns), 15 epochs. The paper's batch 1 is the baseline; larger batches run in the same
process so the ratios compare like with like.

    python benchmarks/teach_recipe.py                 # tiny LLaVA + tiny CLIP, CPU, seconds
    python benchmarks/teach_recipe.py --clip ViT-B-32 # real CLIP cost (random weights)
    python benchmarks/teach_recipe.py --model llava-hf/llava-1.5-7b-hf --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from yollava_agent import load_llava
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.negatives import ClipConfig, ClipEmbedder, NegativePool
from yollava_agent.training.teach import choose_negatives, read_photos
from yollava_agent.training.trainer import train_concept
from synthetic import synthetic_photos

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default=None)
    parser.add_argument("--clip", default="tiny", help="'tiny' or an open_clip model name (random weights)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated; the first is the baseline")
    parser.add_argument("--pool", type=int, default=214)
    args = parser.parse_args()

    runtime = load_llava(args.model, args.device)
    positives = read_photos(synthetic_photos(4, seed=1))
    embedder = ClipEmbedder(ClipConfig(model_name=args.clip, device=str(runtime.device)))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for batch_size in batch_sizes:
            # A fresh pool and cache per row: every row pays for embedding the pool once.
            pool = NegativePool(synthetic_photos(args.pool, seed=2), embedder, Path(cache) / str(batch_size))
            # Random CLIP weights map all photos close together: keep every pool photo usable.
            config = TrainingConfig(epochs=args.epochs, batch_size=batch_size, near_duplicate_threshold=1.0)
            started = time.monotonic()
            negatives = choose_negatives(positives, pool, config)
            mining = time.monotonic() - started
            concept = train_concept(runtime, "bench", positives, negatives, config)
            stats = concept.training
            total = time.monotonic() - started
            samples = sum(stats["samples"].values())
            steps = (samples + batch_size - 1) // batch_size * args.epochs
            rows.append((batch_size, mining, stats, total, steps))

    baseline = rows[0][3]
    print(f"model {args.model} on {runtime.device} ({runtime.dtype}), CLIP {args.clip}, "
          f"{args.epochs} epochs, samples {rows[0][2]['samples']}")
    print("| batch | mine negatives s | describe s | encode s | train s | ms/step | total s | vs batch "
          f"{batch_sizes[0]} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for batch_size, mining, stats, total, steps in rows:
        phases = stats["phase_seconds"]
        print(f"| {batch_size} | {mining:.2f} | {phases['describe']:.2f} | {phases['encode']:.2f} | "
              f"{phases['train']:.2f} | {1000 * phases['train'] / steps:.1f} | {total:.2f} | "
              f"{baseline / total:.2f}x |")


if __name__ == "__main__":
    main()
