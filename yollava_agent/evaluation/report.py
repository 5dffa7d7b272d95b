"""Writing an evaluation's results: `results.json`, `results.md` and `results.png`.

The JSON holds every number (per concept and mean, per method) with the run's settings; null
marks a metric that does not apply (QA for `instant`, QA when the dataset has no questions). The
markdown has the means table (the paper's Table 2 columns), weighted recognition per concept, and
the paper's numbers for reference. The chart is grouped bars, one group per accuracy metric and
one bar per method, drawn with Pillow: matplotlib is not a dependency of this project, and a bar
chart does not justify adding it. Not done: HTML reports, and plots of training curves.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from yollava_agent.evaluation.harness import EvalReport
from yollava_agent.evaluation.metrics import ACCURACY_METRICS, METRICS

LABELS = {
    "positive": "positive",
    "negative": "negative",
    "weighted": "weighted",
    "visual_qa": "visual QA",
    "text_qa": "text QA",
    "prompt_tokens": "prompt tokens",
}

PAPER_NOTE = (
    "Paper (Yo'LLaVA, NeurIPS 2024; 40 subjects, LLaVA-1.5-13B): Yo'LLaVA positive 0.949, negative "
    "0.898, weighted 0.924, visual QA 0.929, text QA 0.883 with 16 tokens; vanilla LLaVA 0.000 / "
    "1.000 / 0.500; LLaVA + human-written description weighted 0.822; without hard negatives "
    "weighted 0.754."
)

COLOURS = (
    (76, 114, 176),
    (221, 132, 82),
    (85, 168, 104),
    (196, 78, 82),
    (129, 114, 179),
    (147, 120, 96),
)


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(report: EvalReport) -> str:
    """The means table, weighted recognition per concept, and the paper's numbers."""
    head = "| method | " + " | ".join(LABELS[m] for m in METRICS) + " |"
    lines = [
        f"# Yo'LLaVA evaluation of {report.dataset.name}",
        "",
        (
            f"Model `{report.model}`, {len(report.concepts)} concepts, methods "
            f"{', '.join(report.results)}; {report.seconds:.1f} s."
        ),
        "",
        head,
        "| " + " | ".join(["---"] * (len(METRICS) + 1)) + " |",
    ]
    for method in report.results:
        summary = report.summary(method)
        cells = [_number(summary[m], 1 if m == "prompt_tokens" else 3) for m in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Weighted recognition per concept:", ""]
    lines.append("| concept | " + " | ".join(report.results) + " |")
    lines.append("| " + " | ".join(["---"] * (len(report.results) + 1)) + " |")
    for concept in report.concepts:
        cells = [_number(report.result(m, concept).weighted) for m in report.results]
        lines.append(f"| {concept} | " + " | ".join(cells) + " |")
    lines += ["", PAPER_NOTE, ""]
    return "\n".join(lines)


def summary_table(report: EvalReport) -> str:
    """Only the means table, for the terminal."""
    text = markdown(report).split("\n")
    start = next(i for i, line in enumerate(text) if line.startswith("| method"))
    end = start + 2 + len(report.results)
    return "\n".join(text[start:end])


def chart(report: EvalReport, size: tuple[int, int] = (960, 520)) -> Image.Image:
    """Grouped bars: one group per accuracy metric, one bar per method (missing values left out)."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=11)
    tiny = ImageFont.load_default(size=9)
    left, right, top, bottom = 56, 190, 44, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.text(
        (left, 12),
        f"Yo'LLaVA evaluation: {report.dataset.name} ({report.model})",
        fill="black",
        font=font,
    )
    for tick in range(6):
        value = tick / 5
        y = top + plot_h - value * plot_h
        draw.line([(left, y), (left + plot_w, y)], fill=(225, 225, 225))
        draw.text((left - 8, y), f"{value:.1f}", fill="black", font=small, anchor="rm")
    draw.line([(left, top), (left, top + plot_h)], fill="black")
    draw.line([(left, top + plot_h), (left + plot_w, top + plot_h)], fill="black")
    methods = list(report.results)
    summaries = {m: report.summary(m) for m in methods}
    group_w = plot_w / len(ACCURACY_METRICS)
    bar_w = group_w * 0.8 / max(len(methods), 1)
    for g, metric in enumerate(ACCURACY_METRICS):
        x0 = left + g * group_w + group_w * 0.1
        for b, method in enumerate(methods):
            value = summaries[method][metric]
            x = x0 + b * bar_w
            if value is None:  # the method does not answer this (QA for instant)
                draw.text(
                    (x + bar_w / 2, top + plot_h - 4), "n/a", fill="gray", font=tiny, anchor="mb"
                )
                continue
            y = top + plot_h - max(0.0, min(1.0, value)) * plot_h
            draw.rectangle([x, y, x + bar_w - 2, top + plot_h], fill=COLOURS[b % len(COLOURS)])
        draw.text(
            (left + (g + 0.5) * group_w, top + plot_h + 10),
            LABELS[metric],
            fill="black",
            font=font,
            anchor="mt",
        )
    for b, method in enumerate(methods):
        y = top + 10 + b * 24
        draw.rectangle(
            [width - right + 16, y, width - right + 30, y + 14], fill=COLOURS[b % len(COLOURS)]
        )
        draw.text((width - right + 38, y + 7), method, fill="black", font=small, anchor="lm")
    return image


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.md and results.png into `out_dir`; return their paths."""
    folder = Path(out_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "results.json",
        "markdown": folder / "results.md",
        "chart": folder / "results.png",
    }
    _write_atomic(paths["json"], (json.dumps(report.as_dict(), indent=2) + "\n").encode("utf-8"))
    _write_atomic(paths["markdown"], markdown(report).encode("utf-8"))
    buffer = io.BytesIO()
    chart(report).save(buffer, format="PNG")
    _write_atomic(paths["chart"], buffer.getvalue())
    return paths
