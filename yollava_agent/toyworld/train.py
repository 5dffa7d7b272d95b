"""Train the toy world's models from nothing: `python -m yollava_agent.toyworld.train OUT`.

Three steps, each seeded: the world's tokenizer (BPE on generated text), the world CLIP
(contrastive, `clip.py`), and the base LLaVA (instruction tuning, `base.py`), which starts from
the CLIP's vision tower. Written to OUT as `clip/` (open_clip config + safetensors) and `llava/`
(`save_pretrained` of model and processor), each through a temporary folder renamed into place,
plus `training.json`: the settings, the loss curves and the base's generic accuracy per task on
held-out examples. `--clip` starts from a CLIP written before, `--base-from` continues a base,
`--tasks` trains on some task kinds only, `--device cuda` trains on a GPU. The committed `yollava_agent/toyworld/weights/` were
made in two phases (about 25 minutes on 2 CPU cores; `weights/training.json` records both):

    python -m yollava_agent.toyworld.train OUT --tasks named_text --base-steps 400 --learning-rate 1.5e-3
    python -m yollava_agent.toyworld.train OUT --base-from OUT/llava --base-steps 1200 --learning-rate 1.5e-3

Text first: a from-scratch language model learns to copy words from earlier in the turn in a
few hundred text-only steps, and far more slowly when the same examples are a tenth of a mix.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from yollava_agent.toyworld.base import (
    build_model,
    build_processor,
    generic_accuracy,
    train_base,
    train_tokenizer,
)
from yollava_agent.toyworld.clip import (
    CONTEXT_LENGTH,
    clip_config,
    load_clip,
    save_clip,
    train_clip,
)
from yollava_agent.toyworld.language import TASK_WEIGHTS, tokenizer_corpus
from yollava_agent.toyworld.world import generic_looks

logger = logging.getLogger(__name__)


def _publish(out: Path, name: str, write: Callable[[Path], object]) -> None:
    """Write `out/name` through a temporary sibling, then swap it in (no half-written results)."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    try:
        write(staging / name)
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write clip/, llava/ and training.json to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clip",
        type=Path,
        default=None,
        help="start from the world CLIP already in this folder (a clip/ written before) instead "
        "of training one",
    )
    parser.add_argument(
        "--base-from",
        type=Path,
        default=None,
        help="continue instruction-tuning the base in this folder (an llava/ written before; its "
        "tokenizer and vision tower are kept, and no CLIP is trained)",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:1")
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=list(TASK_WEIGHTS),
        default=None,
        metavar="KIND",
        help=f"train on these task kinds only, equally often (default: all of {', '.join(TASK_WEIGHTS)})",
    )
    parser.add_argument("--clip-steps", type=int, default=600)
    parser.add_argument("--clip-batch", type=int, default=128)
    parser.add_argument("--base-steps", type=int, default=2500)
    parser.add_argument("--base-batch", type=int, default=64)
    parser.add_argument("--eval-per-task", type=int, default=200, help="held-out examples per task")
    return parser


def _clip(args: argparse.Namespace, looks: list, tokenizer: object) -> object:
    """The world CLIP: loaded from `--clip`, or trained and published to OUT/clip."""

    def encode_text(texts: list[str]) -> torch.Tensor:
        ids = torch.full((len(texts), CONTEXT_LENGTH), tokenizer.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = tokenizer(text)["input_ids"][: CONTEXT_LENGTH - 1] + [tokenizer.eos_token_id]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids

    config = clip_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    if args.clip is not None:
        return load_clip(args.clip, config)
    clip = train_clip(
        looks, encode_text, config, args.clip_steps, args.clip_batch, args.seed, device=args.device
    )
    _publish(args.out, "clip", lambda folder: save_clip(clip, config, folder))
    return clip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    looks = generic_looks()
    previous = None
    clip_seconds = 0.0
    if args.base_from is not None:
        model = LlavaForConditionalGeneration.from_pretrained(args.base_from, dtype=torch.float32)
        tokenizer = AutoProcessor.from_pretrained(args.base_from).tokenizer
        report_file = args.base_from.parent / "training.json"
        if report_file.is_file():
            previous = json.loads(report_file.read_text())
            previous.setdefault("phases", [previous.get("base", {})])
    else:
        tokenizer = train_tokenizer(tokenizer_corpus(np.random.default_rng(args.seed), looks))
        clip = _clip(args, looks, tokenizer)
        clip_seconds = time.monotonic() - started
        model = build_model(tokenizer, clip.visual, args.seed)
    model.to(args.device)
    base_started = time.monotonic()
    curve: dict[int, dict[str, float]] = {}

    def checkpoint(step: int) -> None:
        curve[step] = generic_accuracy(model, tokenizer, looks, 40, args.seed + 3)
        logger.warning("step %d generic accuracy %s", step, json.dumps(curve[step]))

    # A continued run draws other examples than the run it continues.
    data_seed = (
        args.seed + 1 + (0 if previous is None else 1000 * (1 + len(previous.get("phases", []))))
    )
    losses = train_base(
        model,
        tokenizer,
        looks,
        args.base_steps,
        args.base_batch,
        data_seed,
        learning_rate=args.learning_rate,
        on_checkpoint=checkpoint,
        mix=TASK_WEIGHTS if args.tasks is None else dict.fromkeys(args.tasks, 1.0),
    )
    accuracy = generic_accuracy(model, tokenizer, looks, args.eval_per_task, args.seed + 2)

    model.cpu()

    def save_base(folder: Path) -> None:
        model.save_pretrained(folder)
        build_processor(tokenizer).save_pretrained(folder)

    _publish(args.out, "llava", save_base)
    phase = {
        "steps": args.base_steps,
        "batch": args.base_batch,
        "learning_rate": args.learning_rate,
        "tasks": args.tasks,
        "continued_from": None if args.base_from is None else str(args.base_from),
        "seconds": round(time.monotonic() - base_started),
        "loss_every_10_steps": [round(x, 4) for x in losses],
        "generic_accuracy_during_training": curve,
        "generic_accuracy": accuracy,
    }
    if previous is None:
        report = {
            "seed": args.seed,
            "clip": {
                "steps": args.clip_steps,
                "batch": args.clip_batch,
                "seconds": round(clip_seconds),
                "from": None if args.clip is None else str(args.clip),
            },
            "phases": [phase],
        }
    else:
        report = {**previous, "phases": [*previous.get("phases", []), phase]}
    report["base"] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": sum(p["steps"] for p in report["phases"]),
        "generic_accuracy": accuracy,
    }
    report["torch"] = torch.__version__
    _publish(args.out, "training.json", lambda path: path.write_text(json.dumps(report, indent=2)))
    for kind, value in accuracy.items():
        logger.warning("generic accuracy %-14s %.3f", kind, value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
