"""How much of the toyworld benchmark's trained numbers is the training seed: the same world and
base, the `trained` and `trained-no-hard-negatives` methods trained again from other seeds.

The benchmark trains every subject from one seed (the world's). This runs `evaluate` on the
benchmark's own configuration (`benchmark_config`: recipe, CLIP, pool) once per training seed,
only the seed changed (it sets the latent rows' start, the turns' order and the flips), and
prints per seed and method the means over subjects (positive, negative, weighted recognition,
visual and text QA), then the mean and spread over seeds, and trained minus no-hard per seed.
The world's own seed repeats the committed benchmark's numbers.

    python benchmarks/toyworld_training_seeds.py --seed 1                       # ~42 min, one core
    python benchmarks/toyworld_training_seeds.py --seed 1 --subjects bo kip --training-seeds 1 2
    python benchmarks/toyworld_training_seeds.py --seed 1 --base runs/photos-longer-where/llava

Chosen not to: rerun the other methods (no training, so no seed) or the generic check.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from yollava_agent.evaluation.harness import evaluate
from yollava_agent.evaluation.methods import TRAINED, TRAINED_NO_HARD
from yollava_agent.toyworld.benchmark import DEFAULT_BASE, benchmark_config, toyworld_setup

METRICS = ("positive", "negative", "weighted", "visual_qa", "text_qa")
METHODS = (TRAINED, TRAINED_NO_HARD)


def run(
    seed: int,
    training_seeds: Sequence[int],
    subjects: Sequence[str] | None,
    base: str | Path = DEFAULT_BASE,
) -> dict[int, dict[str, dict[str, float]]]:
    """Per training seed, per method, the means over subjects of `METRICS`."""
    setup = toyworld_setup(seed=seed, base=base)
    means: dict[int, dict[str, dict[str, float]]] = {}
    for training_seed in training_seeds:
        training = replace(setup.training, seed=training_seed)
        config = benchmark_config(setup, METHODS, subjects, training)
        report = evaluate(setup.dataset, setup.runtime, config)
        means[training_seed] = {
            method: {m: float(report.summary(method)[m]) for m in METRICS} for method in METHODS
        }
    return means


def markdown(seed: int, means: dict[int, dict[str, dict[str, float]]]) -> str:
    """The table: a row per seed and method, mean ± sd per method, trained minus no-hard per seed."""
    header = "| training seed | method | " + " | ".join(METRICS) + " |"
    lines = [f"World seed {seed}.", "", header, "|" + " --- |" * (len(METRICS) + 2)]
    for training_seed, per_method in means.items():
        for method, values in per_method.items():
            cells = " | ".join(f"{values[m]:.3f}" for m in METRICS)
            lines.append(f"| {training_seed} | {method} | {cells} |")
    for method in METHODS:
        columns = [[per[method][m] for per in means.values()] for m in METRICS]
        spread = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in columns]
        cells = " | ".join(
            f"{statistics.fmean(c):.3f} ± {s:.3f}" for c, s in zip(columns, spread, strict=True)
        )
        lines.append(f"| mean ± sd | {method} | {cells} |")
    for training_seed, per_method in means.items():
        gaps = " | ".join(
            f"{per_method[TRAINED][m] - per_method[TRAINED_NO_HARD][m]:+.3f}" for m in METRICS
        )
        lines.append(f"| {training_seed} | trained − no-hard | {gaps} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the world's seed")
    parser.add_argument(
        "--training-seeds",
        type=int,
        nargs="+",
        help="training seeds (default: the world's seed, then it plus 100 and plus 200)",
    )
    parser.add_argument("--subjects", nargs="+", help="only these subjects (default: all)")
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help="'photos' (the committed base) or a saved LLaVA folder"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    training_seeds = args.training_seeds or [args.seed, args.seed + 100, args.seed + 200]
    table = markdown(args.seed, run(args.seed, training_seeds, args.subjects, args.base))
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


if __name__ == "__main__":
    main()
