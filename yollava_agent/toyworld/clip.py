"""The toy world's CLIP: an open_clip custom model trained contrastively on the world's captions.

It plays two parts, as ViT-B-32 does for real photos: the product's CLIP (hard-negative mining,
the instant tier), loaded through the normal `ClipConfig(model_name, pretrained=file)` path once
its config is registered with open_clip; and the starting point of the base LLaVA's vision tower
(`base.py` converts its visual tower to Hugging Face's `CLIPVisionModel`), so that the language
model learns to read features that already see shapes, colours and patterns. A first attempt that
trained the vision tower from scratch together with the language model stayed blind.

The text tower reads ids of the world's own tokenizer (`base.py`), pooled at the end-of-sequence
token. Training uses open_clip's `ClipLoss` with a cosine schedule, plus supervised heads on the
patch tokens (`train_clip`: captions alone taught colour, hardly shape). 64-px photos in 16-px
patches: 16 image tokens. Not done: image augmentation (the renderer's random places, sizes,
backgrounds and noise already vary every photo).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    PATTERNS,
    SHAPES,
    Look,
    Scene,
    object_map,
    random_scene,
    render,
)

logger = logging.getLogger(__name__)

CLIP_MODEL_NAME = "yollava-toyworld-clip"
"""The name the config is registered under with open_clip."""
CLIP_CONFIG_FILE = f"{CLIP_MODEL_NAME}.json"
CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"
CONTEXT_LENGTH = 40
PATCH_SIZE = 16
"""16-px patches: 16 image tokens per photo, so that the language model's sequences stay short
enough to train on a CPU; an object covers one to four patches."""
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_config(vocab_size: int, pad_id: int, eos_id: int) -> dict[str, Any]:
    """The open_clip model config: a 64-px ViT with 16-px patches and a 3-layer text tower."""
    return {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 4,
            "width": 128,
            "head_width": 32,
            "patch_size": PATCH_SIZE,
        },
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": vocab_size,
            "width": 128,
            "heads": 4,
            "layers": 3,
            "pool_type": "eos",
            "pad_id": pad_id,
            "eos_id": eos_id,
        },
    }


def register_clip_config(folder: Path) -> str:
    """Register the config saved in `folder` with open_clip; returns the model name to use."""
    import open_clip

    if CLIP_MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(Path(folder) / CLIP_CONFIG_FILE)
    return CLIP_MODEL_NAME


def pixels(photos: np.ndarray) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 photos as CLIP-normalised (N, 3, 64, 64) float tensors."""
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (x - mean) / std


ATTRIBUTES = {
    "colour": tuple(COLOURS),
    "shade": (0, 1),
    "shape": SHAPES,
    "pattern": PATTERNS,
    "style": (0, 1),
    "rim": (0, 1),
}
"""What the per-patch heads name of the object a patch shows (its background otherwise)."""


def patch_attributes(scene: Scene, cells: int) -> torch.Tensor:
    """(cells * cells, 7) class ids per patch: the covering object's attributes (-100 on
    background patches), then the background's id (-100 on object patches)."""
    owner = object_map(scene, cells).reshape(-1)
    rows = []
    for index in owner:
        if index < 0:
            rows.append([-100] * len(ATTRIBUTES) + [tuple(BACKGROUNDS).index(scene.background)])
        else:
            look = scene.objects[index].look
            rows.append(
                [values.index(getattr(look, name)) for name, values in ATTRIBUTES.items()] + [-100]
            )
    return torch.tensor(rows)


def train_clip(
    looks: list[Look],
    encode_text: Callable[[list[str]], torch.Tensor],
    config: dict[str, Any],
    steps: int,
    batch_size: int,
    seed: int,
    progress: bool = True,
    attribute_weight: float = 1.0,
    device: str = "cpu",
) -> Any:
    """Train the config's CLIP on freshly rendered scenes and their captions; returns the model.

    Besides open_clip's contrastive `ClipLoss`, linear heads on the tower's patch tokens learn
    what each patch shows (colour, shade, shape, pattern, style, rim, background), weighted by
    `attribute_weight`: captions alone taught a first version colour but hardly shape or
    pattern (linear probes on its tokens: 1.00, 0.27, 0.43), and a base that cannot see shapes
    cannot learn to answer about them. The heads are dropped afterwards.
    """
    import open_clip
    from open_clip.loss import ClipLoss

    from yollava_agent.toyworld.language import caption_for_clip

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "yollava-toyworld-clip-training.json"
        path.write_text(json.dumps(config))
        open_clip.add_model_config(path)
        torch.manual_seed(seed)
        model = open_clip.create_model("yollava-toyworld-clip-training")
    width = config["vision_cfg"]["width"]
    heads = torch.nn.ModuleList(
        [torch.nn.Linear(width, len(values)) for values in ATTRIBUTES.values()]
        + [torch.nn.Linear(width, len(BACKGROUNDS))]
    )
    model.to(device)
    heads.to(device)
    cells = IMAGE_SIZE // PATCH_SIZE
    rng = np.random.default_rng(seed)
    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *heads.parameters()], lr=1e-3, weight_decay=0.1
    )
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        ),
    )
    model.train()
    model.visual.output_tokens = True
    bar = tqdm(range(steps), desc="clip", disable=not progress)
    for step in bar:
        scenes = [random_scene(rng, looks) for _ in range(batch_size)]
        photos = np.stack([render(s, rng) for s in scenes])
        texts = encode_text([caption_for_clip(s, rng) for s in scenes]).to(device)
        pooled, tokens = model.visual(pixels(photos).to(device))
        image_features = torch.nn.functional.normalize(pooled, dim=-1)
        text_features = model.encode_text(texts, normalize=True)
        loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        targets = torch.stack([patch_attributes(s, cells) for s in scenes])
        targets = targets.reshape(-1, len(heads)).to(device)
        flat = tokens.reshape(-1, tokens.shape[-1])
        attribute_loss = torch.stack(
            [
                torch.nn.functional.cross_entropy(head(flat), targets[:, k])
                for k, head in enumerate(heads)
            ]
        ).mean()
        total = loss + attribute_weight * attribute_loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(clip=f"{loss.item():.3f}", attributes=f"{attribute_loss.item():.3f}")
            logger.info(
                "clip step %d loss %.4f attributes %.4f", step, loss.item(), attribute_loss.item()
            )
    model.visual.output_tokens = False
    return model.cpu().eval()


def save_clip(model: Any, config: dict[str, Any], folder: Path) -> None:
    """Write the config (`yollava-toyworld-clip.json`) and the weights (safetensors) to `folder`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLIP_CONFIG_FILE).write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / CLIP_WEIGHTS_FILE)


def load_clip(folder: Path, config: dict[str, Any]) -> Any:
    """The world CLIP saved in `folder` by `save_clip`; its config must equal `config`."""
    import open_clip
    from safetensors.torch import load_file

    saved = json.loads((Path(folder) / CLIP_CONFIG_FILE).read_text())
    if saved != config:
        msg = f"The CLIP in {folder} was made for another tokenizer or size: {saved} != {config}."
        raise ValueError(msg)
    name = register_clip_config(folder)
    model = open_clip.create_model(name)
    model.load_state_dict(load_file(Path(folder) / CLIP_WEIGHTS_FILE))
    return model.eval()
