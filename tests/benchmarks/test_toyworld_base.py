"""The committed toyworld models: small, loadable through the normal paths, and knowing the world."""

from __future__ import annotations

import json

import pytest
import torch

from yollava_agent.toyworld import skills
from yollava_agent.toyworld.assembly import photo_accuracy
from yollava_agent.toyworld.benchmark import WEIGHTS_DIR, base_folder, clip_config, load_base
from yollava_agent.toyworld.world import generic_looks, random_scene, render, subjects
from yollava_agent.training.negatives import ClipEmbedder

MAX_BYTES = 25 * 1024 * 1024
TOLERANCE = 0.02
"""Per task, of 200 turns: four answers that float rounding on another CPU may flip."""


def test_the_checkpoints_are_small() -> None:
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert 0 < size <= MAX_BYTES, f"{size / 2**20:.1f} MiB"


def test_the_photos_base_answers_on_photos_as_its_training_report_says() -> None:
    torch.set_num_threads(1)
    runtime = load_base("photos")
    assert runtime.model.__class__.__name__ == "LlavaForConditionalGeneration"
    reported = json.loads((base_folder("photos") / "training.json").read_text())["photo_accuracy"]
    # The tasks the report measured: a task added to the stage since (`where`) is not in it.
    tasks = [task for task in skills.TASKS if task in reported["accuracy"]]
    accuracy = photo_accuracy(
        runtime.model, runtime.tokenizer, reported["per_task"], reported["seed"], tasks
    )
    assert set(accuracy) == set(reported["accuracy"])
    for task, value in reported["accuracy"].items():
        assert accuracy[task] == pytest.approx(value, abs=TOLERANCE), task


def test_the_world_clip_loads_through_clip_config_and_tells_looks_apart() -> None:
    import numpy as np
    from PIL import Image

    embedder = ClipEmbedder(clip_config())
    rng = np.random.default_rng(0)
    looks = generic_looks()
    bo = subjects()["bo"]
    from yollava_agent.toyworld.world import Scene, place_objects

    def photo(look) -> Image.Image:
        return Image.fromarray(render(Scene(place_objects(rng, [look]), "paper"), rng))

    same = embedder.embed([photo(bo), photo(bo)])
    other = embedder.embed([photo(looks[0])])
    assert embedder.dim == 64
    assert float(same[0] @ same[1]) > float(same[0] @ other[0])
    scenes = embedder.embed(
        [Image.fromarray(render(random_scene(rng, looks), rng)) for _ in range(4)]
    )
    assert torch.allclose(scenes.norm(dim=-1), torch.ones(4), atol=1e-5)
