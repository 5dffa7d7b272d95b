"""The paper's two ablations on the toyworld benchmark: train photos and latent tokens.

`run_ablations` trains the `trained` method again on a subset of subjects with fewer train photos
(1 and 3 of 5; the paper: about 0.68 from one photo, over 0.90 from five) and with fewer latent
tokens (0 and 4 of 16; the paper: 0 tokens far below 16), everything else as the benchmark's
recipe, and reads the 5-photo, 16-token point from the main run's `trained` results on the same
subjects. Written to the report folder: `ablation.json` (every number) and `ablation.png` (two
line charts of weighted recognition, drawn with Pillow as `evaluation/report.py` draws its bars).

Chosen not to: ablate on all twenty subjects (each point is a full training per subject; the
subset keeps the whole benchmark inside its time budget), or ablate the negatives here (the main
table's `trained-no-hard-negatives` is that ablation).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from yollava_agent.evaluation.harness import EvalConfig, EvalReport, evaluate
from yollava_agent.evaluation.methods import TRAINED

PHOTO_COUNTS = (1, 3, 5)
LATENT_COUNTS = (0, 4, 16)
ABLATION_FILE = "ablation.json"
CHART_FILE = "ablation.png"


def _mean_weighted(report: EvalReport) -> float:
    return float(report.summary(TRAINED)["weighted"])


def run_ablations(
    dataset: Path,
    runtime: object,
    config: EvalConfig,
    main: EvalReport,
    concepts: Sequence[str],
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Weighted recognition of `trained` per photo count and per latent-token count on
    `concepts` (the full setting, 5 photos and the recipe's k, from `main`)."""
    full_photos, full_k = max(PHOTO_COUNTS), config.training.num_latent_tokens
    subset = replace(config, methods=[TRAINED], concepts=list(concepts))
    from_main = sum(main.result(TRAINED, c).weighted for c in concepts) / len(concepts)
    photos = {str(full_photos): round(from_main, 4)}
    for count in PHOTO_COUNTS[:-1]:
        report = evaluate(dataset, runtime, replace(subset, train_photos=count), progress=progress)
        photos[str(count)] = round(_mean_weighted(report), 4)
    latent = {str(full_k): round(from_main, 4)}
    for k in LATENT_COUNTS:
        if k == full_k:
            continue
        training = replace(config.training, num_latent_tokens=k)
        report = evaluate(dataset, runtime, replace(subset, training=training), progress=progress)
        latent[str(k)] = round(_mean_weighted(report), 4)
    return {
        "concepts": list(concepts),
        "train_photos": {k: photos[k] for k in sorted(photos, key=int)},
        "latent_tokens": {k: latent[k] for k in sorted(latent, key=int)},
    }


def chart(ablation: dict, size: tuple[int, int] = (900, 380)) -> Image.Image:
    """Two panels: weighted recognition against train photos, and against latent tokens."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    panels = (("train photos", ablation["train_photos"]), ("latent tokens", ablation["latent_tokens"]))
    low, high = 0.4, 1.0
    panel_width = width // 2
    for index, (title, points) in enumerate(panels):
        left, right = index * panel_width + 60, (index + 1) * panel_width - 30
        top, bottom = 40, height - 50
        draw.text((left, 12), f"weighted recognition vs {title}", fill="black", font=font)
        draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
        for tick in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            y = bottom - (tick - low) / (high - low) * (bottom - top)
            draw.line([(left - 4, y), (right, y)], fill=(225, 225, 225))
            draw.text((left - 34, y - 6), f"{tick:.1f}", fill="black", font=font)
        xs = list(points)
        coordinates = []
        for i, x in enumerate(xs):
            px = left + 30 + i * (right - left - 60) / max(1, len(xs) - 1)
            value = min(high, max(low, points[x]))
            py = bottom - (value - low) / (high - low) * (bottom - top)
            coordinates.append((px, py))
            draw.text((px - 4, bottom + 8), x, fill="black", font=font)
            draw.text((px - 14, py - 18), f"{points[x]:.3f}", fill=(40, 40, 160), font=font)
        draw.line(coordinates, fill=(76, 114, 176), width=3)
        for px, py in coordinates:
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=(76, 114, 176))
        draw.text(((left + right) // 2 - 30, height - 22), title, fill="black", font=font)
    return image


def write_ablation(ablation: dict, out: Path) -> dict[str, Path]:
    """`ablation.json` and `ablation.png` in `out`, each written to a temporary file and renamed."""
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    chart(ablation).save(buffer, format="PNG")
    files = {
        "ablation": (out / ABLATION_FILE, json.dumps(ablation, indent=2).encode()),
        "ablation_chart": (out / CHART_FILE, buffer.getvalue()),
    }
    for path, data in files.values():
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=out)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(staging, path)
    return {name: path for name, (path, _) in files.items()}
