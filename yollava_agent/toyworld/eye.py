"""The eye: a vision tower and projector whose image tokens are the slots the language model reads.

`python -m yollava_agent.toyworld.eye OUT --language-model BASE` trains a Hugging Face
`CLIPVisionModel` (64-px photos, 16-px patches: the 16 image tokens of `slots.py`) and a LLaVA
projector (`LlavaMultiModalProjector`) with the language model frozen and absent from the loop:

- regression: each projected image token is pulled (mean squared error, relative to the slots'
  length) onto the symbolic slot of its patch, computed from the frozen language model's own
  input-embedding rows (`slots.slot_vectors`): the soft word the model already reads there;
- per-patch heads on the tower's last layer name every generative factor of the patch's owner
  (`FACTORS`): colour, shade, pattern, style, rim, shape, size, place, and the background of a
  background patch. Shade, style and rim are never named by the language, yet a subject differs
  from its same-word look-alikes only by them: an eye that does not see them cannot tell.

Photos come from a bank of rendered scenes (`PhotoBank`) of which a slice is re-rendered each
step (`refresh_per_step`), so the tower sees new photos all the time. The default slice (16 of a
128-photo batch) costs little but lets the tower learn its bank by heart: after 3,000 steps the
shape head's loss was 0.05 on the bank and 0.16 on fresh photos. A batch's worth (128, a third
more time a step here) is what brought every factor's probe to the gate (the README's
"Personalization on photos", item 2); the default stays 16 so the committed stages' commands
rebuild what they built.
The scenes are the language model's: one to three generic looks (never a subject's), single
objects (what references and `same` show), and a big object with small distractors (what the
benchmark's photos are). `probe_accuracy` fits linear probes on the projected tokens of held-out
photos, every token an object owns (not only its centre patch), per factor: the gate.

Written to OUT as it goes: `checkpoint.pt` (tower, projector, heads, optimiser, step; a run
restarted with the same command resumes, with a freshly drawn bank), `log.jsonl` (losses, head
accuracy and probes every `eval_every` steps); `--probe` writes the gate's probes to
`probes.json`. BASE is a symbolic or stage-2 export, or an assembled base (its language model's
rows: a new eye for a base whose language model photos have tuned). Chosen not to: contrastive
training against captions (the per-patch targets already name everything captions could), image
augmentation (the renderer's places, sizes, backgrounds and noise vary every photo), and a CLS
objective (LLaVA drops the CLS token: only patch tokens reach the language model).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from yollava_agent.toyworld.clip import pixels
from yollava_agent.toyworld.folders import saved_folder
from yollava_agent.toyworld.slots import GRID, SLOTS, slot_components, slot_vectors, word_ids
from yollava_agent.toyworld.world import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    PATTERNS,
    PLACES,
    SHAPES,
    SIZES,
    Look,
    Scene,
    generic_looks,
    place_objects,
    random_look,
    random_scene,
    render,
)

logger = logging.getLogger(__name__)

PATCH_SIZE = IMAGE_SIZE // GRID
TOWER_SHAPE = ("width", "layers", "heads")
FACTORS: dict[str, tuple[object, ...]] = {
    "colour": tuple(COLOURS),
    "shade": (0, 1),
    "pattern": PATTERNS,
    "style": (0, 1),
    "rim": (0, 1),
    "shape": SHAPES,
    "size": tuple(SIZES),
    "place": PLACES,
    "background": tuple(BACKGROUNDS),
}
"""What the heads name of a patch: its owner object's attributes, or its background."""
IGNORE = -100


def patch_labels(scene: Scene, owners: np.ndarray) -> np.ndarray:
    """(16, len(FACTORS)) class ids per patch: the owner's attributes (IGNORE on background
    patches, and for `style` on plain objects, which have none), or the background's id (IGNORE
    on object patches)."""
    labels = np.full((SLOTS, len(FACTORS)), IGNORE, dtype=np.int64)
    names = list(FACTORS)
    for slot, owner in enumerate(owners):
        if owner < 0:
            labels[slot, names.index("background")] = FACTORS["background"].index(scene.background)
            continue
        obj = scene.objects[owner]
        look = obj.look
        values = {
            "colour": look.colour,
            "shade": look.shade,
            "pattern": look.pattern,
            "style": look.style,
            "rim": look.rim,
            "shape": look.shape,
            "size": obj.size,
            "place": obj.place,
        }
        for name, value in values.items():
            if name == "style" and look.pattern == "plain":
                continue
            labels[slot, names.index(name)] = FACTORS[name].index(value)
    return labels


def bank_scene(rng: np.random.Generator, looks: Sequence[Look]) -> Scene:
    """A photo as the language model's tasks and the benchmark draw them: a random scene of one
    to three objects (half), a single object (a quarter), or a big object with up to two small
    distractors (a quarter)."""
    draw = rng.random()
    background = tuple(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    if draw < 0.5:
        return random_scene(rng, looks)
    if draw < 0.75:
        return Scene(place_objects(rng, [random_look(rng, looks)]), background)
    chosen: list[Look] = []
    while len(chosen) < 1 + int(rng.integers(3)):
        look = random_look(rng, looks)
        if look not in chosen:
            chosen.append(look)
    sizes = ["big"] + ["small"] * (len(chosen) - 1)
    return Scene(place_objects(rng, chosen, sizes=sizes), background)


class PhotoBank:
    """Rendered photos with their slot components and patch labels; `refresh` re-renders some."""

    def __init__(
        self, size: int, ids: dict[str, int], seed: int, looks: Sequence[Look] | None = None
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.looks = list(looks) if looks is not None else generic_looks()
        self.ids = ids
        self.photos = np.zeros((size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        self.components: np.ndarray | None = None
        self.labels = np.zeros((size, SLOTS, len(FACTORS)), dtype=np.int64)
        self.owners = np.zeros((size, SLOTS), dtype=np.int64)
        for index in range(size):
            self._draw(index)

    def __len__(self) -> int:
        return len(self.photos)

    def _draw(self, index: int) -> None:
        scene = bank_scene(self.rng, self.looks)
        components, owners = slot_components(scene, self.ids)
        if self.components is None:
            self.components = np.zeros((len(self),) + components.shape, dtype=np.int64)
        self.photos[index] = render(scene, self.rng)
        self.components[index] = components
        self.labels[index] = patch_labels(scene, owners)
        self.owners[index] = owners

    def refresh(self, count: int) -> None:
        for index in self.rng.choice(len(self), size=count, replace=False):
            self._draw(int(index))

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        assert self.components is not None
        return {
            "pixel_values": pixels(self.photos[indices]),
            "components": torch.from_numpy(self.components[indices]),
            "labels": torch.from_numpy(self.labels[indices]),
        }


@dataclass
class EyeConfig:
    """Everything an eye run is made from; stored in its checkpoint and log."""

    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.05
    width: int = 192
    layers: int = 6
    heads: int = 6
    regression_weight: float = 1.0
    bank_size: int = 20000
    refresh_per_step: int = 16
    seed: int = 0
    eval_every: int = 250
    eval_photos: int = 1500

    def lr_factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup)
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, self.steps) / self.steps)))


def tower_config(config: EyeConfig) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=config.width,
        intermediate_size=4 * config.width,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=config.width,
        attn_implementation="sdpa",
    )


def projector_config(vision: CLIPVisionConfig, text_hidden: int) -> LlavaConfig:
    """The LLaVA config the projector is built from (llava-1.5's: linear, GELU, linear)."""
    from transformers import LlamaConfig

    return LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(hidden_size=text_hidden),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )


class Eye(torch.nn.Module):
    """Tower, projector and the per-patch factor heads (the heads are for training only)."""

    def __init__(self, config: EyeConfig, text_hidden: int) -> None:
        super().__init__()
        vision = tower_config(config)
        self.tower = CLIPVisionModel(vision)
        self.projector = LlavaMultiModalProjector(projector_config(vision, text_hidden))
        self.heads = torch.nn.ModuleList(
            [torch.nn.Linear(config.width, len(values)) for values in FACTORS.values()]
        )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(patch features of the last layer, projected image tokens), CLS dropped as LLaVA's
        "default" feature selection does."""
        features = self.tower(pixel_values=pixel_values).last_hidden_state[:, 1:]
        return features, self.projector(features)


def load_eye(folder: Path) -> tuple[Eye, dict]:
    """The eye of a run folder (its `checkpoint.pt`) and the run's record."""
    state = torch.load(Path(folder) / "checkpoint.pt", weights_only=False)
    config = EyeConfig(**state["config"])
    eye = Eye(config, state["eye"]["projector.linear_2.weight"].shape[0])
    eye.load_state_dict(state["eye"])
    return eye.eval(), state


def eye_loss(
    eye: Eye,
    batch: dict[str, torch.Tensor],
    table: torch.Tensor,
    scale: float,
    regression_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    features, tokens = eye(batch["pixel_values"])
    targets = slot_vectors(batch["components"], table, scale)
    regression = (tokens - targets).pow(2).sum(-1).mean() / scale**2
    flat = features.reshape(-1, features.shape[-1])
    labels = batch["labels"].reshape(-1, len(FACTORS))
    parts = {"regression": regression.item()}
    heads = []
    for k, (name, head) in enumerate(zip(FACTORS, eye.heads, strict=True)):
        wanted = labels[:, k] != IGNORE
        loss = torch.nn.functional.cross_entropy(head(flat[wanted]), labels[wanted, k])
        parts[name] = loss.item()
        heads.append(loss)
    total = regression_weight * regression + torch.stack(heads).mean()
    return total, parts


@torch.inference_mode()
def project(eye: Eye, bank: PhotoBank, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(photos, 16, width) tower features and (photos, 16, hidden) projected tokens of a bank."""
    features, tokens = [], []
    for start in range(0, len(bank), batch_size):
        batch = bank.batch(np.arange(start, min(start + batch_size, len(bank))))
        f, t = eye(batch["pixel_values"])
        features.append(f)
        tokens.append(t)
    return torch.cat(features), torch.cat(tokens)


def fit_probe(
    x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 300, seed: int = 0
) -> torch.nn.Linear:
    """A linear softmax classifier fitted by full-batch Adam on standardised inputs (the mean and
    spread are folded into the returned layer)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    probe = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(probe(z), y) + 1e-4 * probe.weight.pow(2).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        folded = torch.nn.Linear(x.shape[1], classes)
        folded.weight.copy_(probe.weight / std)
        folded.bias.copy_(probe.bias - (probe.weight * mean / std).sum(1))
    return folded


@torch.enable_grad()
def probe_accuracy(tokens: torch.Tensor, labels: torch.Tensor, fit_share: float = 0.7) -> dict[str, float]:
    """Per factor: a linear probe fitted on the first `fit_share` of the photos' tokens (every
    token the factor applies to: an object's for its attributes, a background patch's for the
    background) and its accuracy on the rest."""
    split = int(len(tokens) * fit_share)
    result = {}
    for k, (name, values) in enumerate(FACTORS.items()):
        fit_rows = labels[:split, :, k] != IGNORE
        test_rows = labels[split:, :, k] != IGNORE
        probe = fit_probe(tokens[:split][fit_rows].detach(), labels[:split][fit_rows][:, k], len(values))
        with torch.no_grad():
            predicted = probe(tokens[split:][test_rows]).argmax(-1)
        result[name] = round(float((predicted == labels[split:][test_rows][:, k]).float().mean()), 4)
    return result


def object_tokens(
    tokens: torch.Tensor, labels: torch.Tensor, owners: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objects, hidden) the mean image token of each object of each photo, what the language
    model's pointer head reads when it attends to an object's slots, and (objects, factors) its
    labels (the owner's attributes; IGNORE where a factor does not apply)."""
    means, rows = [], []
    for photo in range(len(tokens)):
        for owner in sorted(set(owners[photo].tolist()) - {-1}):
            mask = owners[photo] == owner
            means.append(tokens[photo][mask].mean(0))
            rows.append(labels[photo][mask][0])
    return torch.stack(means), torch.stack(rows)


@torch.enable_grad()
def object_probe_hits(
    tokens: torch.Tensor, labels: torch.Tensor, owners: torch.Tensor, fit_share: float = 0.7
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per object factor, a linear probe on each object's mean image token (`object_tokens`),
    fitted on the first `fit_share` of the photos' objects: whether it is right on each held-out
    object (IGNORE-labelled ones included, to be masked), and those objects' labels."""
    split = int(len(tokens) * fit_share)
    fit_x, fit_y = object_tokens(tokens[:split], labels[:split], owners[:split])
    test_x, test_y = object_tokens(tokens[split:], labels[split:], owners[split:])
    hits = {}
    for k, (name, values) in enumerate(FACTORS.items()):
        if name == "background":
            continue
        fit_rows = fit_y[:, k] != IGNORE
        probe = fit_probe(fit_x[fit_rows].detach(), fit_y[fit_rows][:, k], len(values))
        with torch.no_grad():
            hits[name] = probe(test_x).argmax(-1) == test_y[:, k]
    return hits, test_y


def object_scores(
    hits: dict[str, torch.Tensor], labels: torch.Tensor, among: torch.Tensor | None = None
) -> dict[str, float]:
    """Per factor, the share of `object_probe_hits` that are right on the objects it applies to
    (and, when given, that `among` selects)."""
    names = list(FACTORS)
    scores = {}
    for name, right in hits.items():
        applies = labels[:, names.index(name)] != IGNORE
        if among is not None:
            applies = applies & among
        scores[name] = round(float(right[applies].float().mean()), 4)
    return scores


def object_probe_accuracy(
    tokens: torch.Tensor, labels: torch.Tensor, owners: torch.Tensor, fit_share: float = 0.7
) -> dict[str, float]:
    """Per object factor: the held-out accuracy of `object_probe_hits`."""
    return object_scores(*object_probe_hits(tokens, labels, owners, fit_share))


@torch.inference_mode()
def head_accuracy(eye: Eye, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    flat = features.reshape(-1, features.shape[-1])
    rows = labels.reshape(-1, len(FACTORS))
    result = {}
    for k, (name, head) in enumerate(zip(FACTORS, eye.heads, strict=True)):
        wanted = rows[:, k] != IGNORE
        right = head(flat[wanted]).argmax(-1) == rows[wanted, k]
        result[name] = round(float(right.float().mean()), 4)
    return result


def regression_error(tokens: torch.Tensor, components: torch.Tensor, table: torch.Tensor, scale: float) -> float:
    """Mean squared distance of projected tokens to their slots, relative to the slots' length."""
    targets = slot_vectors(components, table, scale)
    return round(float((tokens - targets).pow(2).sum(-1).mean() / scale**2), 5)


def _atomic_save(obj: object, path: Path) -> None:
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    torch.save(obj, staging)
    os.replace(staging, path)


def is_llava(folder: Path) -> bool:
    """Whether the Hugging Face checkpoint in `folder` is a LLaVA (an assembled base)."""
    return AutoConfig.from_pretrained(folder).model_type == "llava"


def language_model_rows(folder: Path) -> tuple[torch.Tensor, float, dict[str, int]]:
    """The frozen language model's input rows, its slot length and its slot-word ids: of a
    symbolic or skills export, or of the language model inside an assembled base (to regress a
    new eye onto a base's photo-tuned language model)."""
    from yollava_agent.toyworld.symbolic import load_symbolic

    if is_llava(folder):
        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        scale = model.config.text_config.slot_scale
    else:
        model, tokenizer = load_symbolic(folder)
        scale = model.config.slot_scale
    table = model.get_input_embeddings().weight.detach().clone()
    return table, float(scale), word_ids(tokenizer)


def eye_parts(
    folder: Path, option: str = "--init"
) -> tuple[dict[str, int], torch.nn.Module, torch.nn.Module, torch.nn.ModuleList | None]:
    """The tower's shape (width, layers, heads), tower, projector and factor heads of an eye run
    (a folder with `checkpoint.pt`) or of an assembled base (no heads: a base keeps none);
    `option` is the command-line option that named `folder`, for the error."""
    if (folder / "checkpoint.pt").is_file():
        eye, state = load_eye(folder)
        shape = {name: state["config"][name] for name in TOWER_SHAPE}
        return shape, eye.tower, eye.projector, eye.heads
    if (folder / "config.json").is_file() and is_llava(folder):
        base = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        vision = base.config.vision_config
        values = (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads)
        shape = dict(zip(TOWER_SHAPE, values, strict=True))
        return shape, base.model.vision_tower, base.model.multi_modal_projector, None
    msg = (
        f"{option} {str(folder)!r} is neither an eye run (no checkpoint.pt) nor an assembled base"
        " (no llava config.json): pass an eye.py run folder or a base assembly.py wrote."
    )
    raise ValueError(msg)


def start_from(eye: Eye, init: Path, config: EyeConfig, language_model: Path) -> None:
    """Load into `eye` the weights a new run starts from: all of the eye run `init`, or the tower
    and projector of the assembled base `init` (its heads stay as drawn), after checking that
    their shapes are `config`'s."""
    theirs, tower, projector, heads = eye_parts(init)
    ours = {name: getattr(config, name) for name in TOWER_SHAPE}
    if theirs != ours:
        msg = (
            f"The eye in {str(init)!r} is a tower of {theirs}, not the {ours} asked for:"
            " pass the same --width, --layers and --heads as the eye it starts from."
        )
        raise ValueError(msg)
    width = projector.linear_2.out_features
    if width != eye.projector.linear_2.out_features:
        msg = (
            f"The eye in {str(init)!r} projects to width {width} but the language model in"
            f" {str(language_model)!r} reads width {eye.projector.linear_2.out_features}: start"
            " from an eye trained for a model of the same width."
        )
        raise ValueError(msg)
    eye.tower.load_state_dict(tower.state_dict())
    eye.projector.load_state_dict(projector.state_dict())
    if heads is not None:
        eye.heads.load_state_dict(heads.state_dict())


def train_eye(
    out: Path,
    language_model: Path,
    config: EyeConfig,
    max_minutes: float | None = None,
    init: Path | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) an eye in `out` against the frozen language model in `language_model`;
    a new run starts from `init` when given (`start_from`: an eye run or an assembled base;
    optimiser and schedule fresh): an eye re-regressed onto a continued language model.
    `stop_after` ends the run at that step, its schedule still `config.steps`' (a checkpoint
    there, from which the same call resumes)."""
    out.mkdir(parents=True, exist_ok=True)
    table, scale, ids = language_model_rows(language_model)
    torch.manual_seed(config.seed)
    eye = Eye(config, table.shape[1])
    if init is not None:
        start_from(eye, init, config, language_model)
    optimizer = torch.optim.AdamW(
        eye.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    step, minutes_before = 0, 0.0
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False)
        eye.load_state_dict(state["eye"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, minutes_before = state["step"], state["minutes"]
        logger.warning("Resumed %s at step %d (%.1f min)", out, step, minutes_before)
    bank = PhotoBank(config.bank_size, ids, config.seed + 1 + step)
    held_out = PhotoBank(config.eval_photos, ids, config.seed + 10**6)
    rng = np.random.default_rng(config.seed + 2 + step)
    started = time.monotonic()
    sums: dict[str, float] = defaultdict(float)
    counted = 0
    record: dict = {}
    eye.train()
    last = config.steps if stop_after is None else min(stop_after, config.steps)
    while step < last:
        batch = bank.batch(rng.choice(len(bank), size=config.batch_size, replace=False))
        loss, parts = eye_loss(eye, batch, table, scale, config.regression_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(eye.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bank.refresh(config.refresh_per_step)
        step += 1
        for k, v in parts.items():
            sums[k] += v
        counted += 1
        minutes = minutes_before + (time.monotonic() - started) / 60
        if step % config.eval_every == 0 or step == last:
            eye.eval()
            features, tokens = project(eye, held_out)
            labels = torch.from_numpy(held_out.labels)
            record = {
                "step": step,
                "minutes": round(minutes, 2),
                "lr": round(schedule.get_last_lr()[0], 6),
                **{f"loss_{k}": round(v / counted, 4) for k, v in sums.items()},
                "held_out_regression": regression_error(
                    tokens, torch.from_numpy(held_out.components), table, scale
                ),
                "heads": head_accuracy(eye, features, labels),
                "probes": probe_accuracy(tokens, labels),
                "object_probes": object_probe_accuracy(
                    tokens, labels, torch.from_numpy(held_out.owners)
                ),
            }
            eye.train()
            with (out / "log.jsonl").open("a") as log:
                log.write(json.dumps(record) + "\n")
            logger.warning(
                "step %d %.1f min regression %.4f probes %s",
                step,
                minutes,
                record["held_out_regression"],
                record["probes"],
            )
            sums.clear()
            counted = 0
            _atomic_save(
                {
                    "eye": eye.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "minutes": minutes,
                    "config": asdict(config),
                    "language_model": str(language_model),
                    "init": None if init is None else str(init),
                },
                checkpoint_path,
            )
            if max_minutes is not None and minutes >= max_minutes:
                break
    return record


PROBE_PHOTOS = 3000
PROBE_SEED = 10**6 + 5


def probe_report(folder: Path, photos: int = PROBE_PHOTOS, seed: int = PROBE_SEED) -> dict:
    """The gate's probes of the image tokens of an eye run or of an assembled base (the tokens its
    language model receives) on `photos` fresh held-out photos: per token, per object (its mean
    token), and per object split by size (small objects bound shape and rim). `step` is the eye
    run's, None for a base."""
    if (folder / "checkpoint.pt").is_file():
        eye, state = load_eye(folder)
        step, language_model = state["step"], Path(state["language_model"])
    else:
        shape, tower, projector, _ = eye_parts(folder, "--probe")
        eye = Eye(EyeConfig(**shape), projector.linear_2.out_features)
        eye.tower.load_state_dict(tower.state_dict())
        eye.projector.load_state_dict(projector.state_dict())
        step, language_model = None, folder
    _, _, ids = language_model_rows(language_model)
    bank = PhotoBank(photos, ids, seed)
    _, tokens = project(eye.eval(), bank)
    labels, owners = torch.from_numpy(bank.labels), torch.from_numpy(bank.owners)
    hits, test_y = object_probe_hits(tokens, labels, owners)
    size = test_y[:, list(FACTORS).index("size")]
    per_size = {word: object_scores(hits, test_y, size == i) for i, word in enumerate(FACTORS["size"])}
    return {
        "eye": str(folder),
        "step": step,
        "photos": photos,
        "seed": seed,
        "token_probes": probe_accuracy(tokens, labels),
        "object_probes": object_scores(hits, test_y),
        "object_probes_by_size": {
            name: {word: scores[name] for word, scores in per_size.items()} for name in hits
        },
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for checkpoint.pt and log.jsonl")
    parser.add_argument(
        "--language-model",
        type=saved_folder("config.json"),
        help="the frozen language model's folder (to train)",
    )
    defaults = EyeConfig()
    for name, value in asdict(defaults).items():
        kind = type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this long")
    parser.add_argument(
        "--stop-after", type=int, default=None, help="stop at this step (the schedule stays --steps')"
    )
    parser.add_argument(
        "--init",
        type=saved_folder("checkpoint.pt", "config.json"),
        default=None,
        help="start a new run from this eye run's weights, or from an assembled base's eye",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    parser.add_argument(
        "--probe",
        nargs="?",
        const=True,
        type=saved_folder("checkpoint.pt", "config.json"),
        metavar="EYE",
        help="train nothing; write OUT/probes.json, the gate's probes of EYE's image tokens (an eye"
        " run or an assembled base; OUT's eye when EYE is left out)",
    )
    parser.add_argument(
        "--probe-photos", type=int, default=PROBE_PHOTOS, help="held-out photos --probe reads"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.probe is not None:
        report = probe_report(args.out if args.probe is True else args.probe, args.probe_photos)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "probes.json").write_text(json.dumps(report, indent=1))
        logger.warning("Probes of %s: %s", args.out, report)
        return 0
    if args.language_model is None:
        msg = "Name the frozen language model to train against with --language-model FOLDER."
        raise SystemExit(msg)
    config = EyeConfig(**{name: getattr(args, name) for name in asdict(EyeConfig())})
    train_eye(args.out, args.language_model, config, args.max_minutes, args.init, args.stop_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
