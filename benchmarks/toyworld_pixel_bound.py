"""How well shape and rim can be read from a toyworld photo's pixels at all: the eye gate's bound.

The eye gate asks linear probes on the image tokens to name every factor at 0.95 or more; the
places-first base's eye reached shape 0.91 and rim 0.94 per token, small objects' shape 0.80 per
object, the committed one's shape 0.935 and rim 0.958 (README, "Personalization on photos",
item 2). Whether 64-px photos of 5.5-11.5 px objects hold that much is measured here: a small
convolutional net (four 3x3 layers) reads shape and rim from a 28-px crop centred on an object
(it is told where the object is, which the eye is not), trained on freshly rendered objects the
way the eye's photos are drawn (one to three objects, any background), and tested on held-out
ones. It prints a table by object radius.

    python benchmarks/toyworld_pixel_bound.py                 # 30,000 objects, 4,000 steps, ~13 min
    python benchmarks/toyworld_pixel_bound.py --objects 2000 --steps 200   # a smoke run

Chosen not to: make it a tower the base could use (LLaVA's vision tower is a ViT of 16-px
patches: this net only says what the pixels allow).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    SHAPES,
    Scene,
    generic_looks,
    place_objects,
    random_look,
    render,
)

CROP = 28
RADIUS_BINS = ((5.5, 6.0), (6.0, 6.5), (6.5, 7.0), (9.0, 10.0), (10.0, 11.5))
"""Object radii (px) the table splits by: the small size's three thirds, the big size's two."""


def rendered_objects(
    rng: np.random.Generator, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """`count` crops (count, 3, CROP, CROP) centred on an object of a rendered photo, with its
    shape and rim labels and its radius. Small objects are 60% (they bound the eye)."""
    looks = generic_looks()
    crops, shapes, rims, radii = [], [], [], []
    half = CROP // 2
    while len(crops) < count:
        size = "small" if rng.random() < 0.6 else "big"
        look = random_look(rng, looks)
        others = [random_look(rng, looks) for _ in range(int(rng.integers(0, 3)))]
        try:
            objects = place_objects(rng, [look, *others], sizes=[size] + ["small"] * len(others))
        except ValueError:
            continue
        background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
        photo = render(Scene(objects, background), rng).astype(np.float32) / 255
        padded = np.pad(photo, ((half, half), (half, half), (0, 0)), mode="edge")
        y, x = round(objects[0].y) + half, round(objects[0].x) + half
        crops.append(padded[y - half : y + half, x - half : x + half].transpose(2, 0, 1))
        shapes.append(SHAPES.index(look.shape))
        rims.append(look.rim)
        radii.append(objects[0].radius)
    return (
        torch.from_numpy(np.stack(crops)),
        torch.tensor(shapes),
        torch.tensor(rims),
        np.array(radii),
    )


def reader() -> torch.nn.Module:
    """Four 3x3 convolutions, two poolings, a linear layer: shape logits then rim logits."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 48, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.Conv2d(48, 64, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 96, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(96, 128, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(128, len(SHAPES) + 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=30000, help="rendered training objects")
    parser.add_argument("--test-objects", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=4000, help="steps of 128 objects")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    crops, shapes, rims, _ = rendered_objects(rng, args.objects)
    test_crops, test_shapes, test_rims, test_radii = rendered_objects(rng, args.test_objects)
    net = reader()
    optimizer = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=args.steps)
    for _ in range(args.steps):
        batch = torch.randint(len(crops), (128,))
        logits = net(crops[batch])
        loss = torch.nn.functional.cross_entropy(logits[:, : len(SHAPES)], shapes[batch])
        loss = loss + torch.nn.functional.cross_entropy(logits[:, len(SHAPES) :], rims[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        logits = torch.cat([net(test_crops[k : k + 500]) for k in range(0, len(test_crops), 500)])
    shape_right = (logits[:, : len(SHAPES)].argmax(1) == test_shapes).numpy()
    rim_right = (logits[:, len(SHAPES) :].argmax(1) == test_rims).numpy()
    print(
        f"{args.objects} training objects, {args.steps} steps, {time.monotonic() - started:.0f} s"
    )
    print("| objects | count | shape | rim |")
    print("| --- | --- | --- | --- |")
    groups = [("all", np.ones_like(test_radii, dtype=bool)), ("small", test_radii < 8)]
    groups += [
        (f"radius {low}-{high} px", (test_radii >= low) & (test_radii < high))
        for low, high in RADIUS_BINS
    ]
    for name, chosen in groups:
        print(
            f"| {name} | {int(chosen.sum())} | {shape_right[chosen].mean():.3f} "
            f"| {rim_right[chosen].mean():.3f} |"
        )


if __name__ == "__main__":
    main()
