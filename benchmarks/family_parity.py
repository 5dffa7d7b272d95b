"""Measure, per LLaVA family, that training optimises what inference serves, and print a table.

For each model a concept is trained for two epochs (so its rows have moved from their start),
then, with `yollava_agent.training.parity`:
- train vs serve: the trainer's logits against the chat model's forward pass with the concept
  injected, for a positive photo turn, a negative photo turn and a text-only turn (the largest
  relative error of the three);
- fast vs full: all those samples as one batch through the cached-prefix step and through the
  full-sequence step: relative error of the loss and of the concept rows' gradients.
Photos come in three shapes, so the tiling families (LLaVA-NeXT, OneVision) give them different
numbers of image tokens. Default: the four tiny builds, fp32 on the CPU, seconds each.

    python benchmarks/family_parity.py
    python benchmarks/family_parity.py --model llava-hf/llava-interleave-qwen-0.5b-hf --device cuda
"""

from __future__ import annotations

import argparse
import random

import torch

from synthetic import synthetic_photos
from yollava_agent import load_llava
from yollava_agent.tiny import TINY_BUILDS
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import attribute_questions, recognition_samples, text_samples
from yollava_agent.training.fast import unsupported_reason
from yollava_agent.training.parity import fast_path_error, serving_error
from yollava_agent.training.trainer import _Encoder, train_concept

SHAPES = ((96, 96), (128, 80), (72, 120))


def _photos(count: int, seed: int) -> list[tuple[str, object]]:
    photos = synthetic_photos(count, seed)
    return [(f"{seed}-{i}", p.resize(SHAPES[i % len(SHAPES)])) for i, p in enumerate(photos)]


def measure(model: str, device: str | None, dtype: str) -> list[str]:
    """One table row for `model`."""
    runtime = load_llava(model, device, dtype)
    positives, negatives = _photos(3, seed=1), _photos(3, seed=2)
    config = TrainingConfig(
        epochs=2, batch_size=4, warmup_epochs=1, turns_per_positive=2, attribute_answer_tokens=8,
        learning_rate=1e-2,
    )
    concept = train_concept(runtime, "bo", positives, negatives, config)
    samples = recognition_samples("<bo>", positives, negatives, 1, random.Random(0))
    samples += text_samples("<bo>", attribute_questions("object")[:2], [["It is red.", "Round."]])
    firsts = {}
    for sample in samples:
        firsts.setdefault(sample.kind, sample)
    served = max(serving_error(runtime, concept, s).logit_error for s in firsts.values())
    fast = fast_path_error(runtime, concept, samples, [i % 2 == 0 for i in range(len(samples))])
    with runtime.lock:
        runtime.set_concepts([concept])
        encoder = _Encoder(runtime, "bo", 16)
        encoded = [encoder.encode(s) for s in samples]
        first_id = runtime.token_ids("bo")[0]
        reason = unsupported_reason(runtime, encoded, first_id, 17)
        runtime.set_concepts([])
    tokens = sorted(set(encoder.image_tokens.values()))
    return [
        model,
        type(runtime.model).__name__,
        "yes" if runtime.tied_embeddings else "no",
        "/".join(map(str, tokens)),
        "fast" if reason is None else f"fallback: {reason}",
        f"{served:.1e}",
        f"{fast.loss:.1e}",
        f"{fast.input_gradient:.1e}",
        f"{fast.output_gradient:.1e}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", help="repeatable; default: the four tiny builds"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()
    torch.manual_seed(0)
    header = [
        "model", "class", "tied", "image tokens per photo", "training step", "train vs serve",
        "fast vs full: loss", "input-row grads", "output-row grads",
    ]
    rows = [measure(model, args.device, args.dtype) for model in args.model or list(TINY_BUILDS)]
    print(f"relative errors, {args.dtype} on {args.device}")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
