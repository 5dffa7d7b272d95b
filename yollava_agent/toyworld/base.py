"""The toy world's base LLaVA: tokenizer, architecture, instruction tuning and its generic accuracy.

`LlavaForConditionalGeneration` like llava-1.5, only small: the vision tower is the world CLIP's
ViT converted to Hugging Face's `CLIPVisionModel` (`convert.py`), a two-layer GELU projector, and a
4-layer Llama (hidden 192) over a byte-fallback BPE tokenizer trained on the world's text; the
processor carries llava-1.5's chat template, so the product's prompts, concept injection, training
and scoring run on it unchanged. About 3 M parameters; it loads with `load_llava(folder)`.

Training is instruction tuning on freshly generated examples (`language.py`). The loss: answer
tokens and end-of-sequence as the product's trainer computes them (averaged per example, so long
captions do not dominate); half-weighted next-token prediction on the user turn's text (language
pretraining, which a from-scratch LM needs: copying a name from earlier in the turn is learnt in a
few hundred text-only steps, and is what descriptions and concept prompts rely on); and a small
per-patch loss that makes each projected image token name its patch's words. The language model
and projector train at full learning rate, the vision tower at a tenth (it starts from the world
CLIP, which already sees; the `same` task sharpens what captions never name). `train.py` runs it
in phases (`--tasks` picks task kinds, `--base-from` continues a base). Examples are tokenised
exactly as `apply_chat_template` renders a user turn (a test checks the equality).

`generic_accuracy` reads the base's answers on held-out examples: yes/no and letter answers by
their first token, others only when every token is the top choice under teacher forcing (what
greedy decoding would produce). Not done: a separate projector-alignment stage (the language model
starts from nothing, so there is nothing to keep frozen) and mixed precision (CPU float32).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from yollava_agent.tiny import llava_processor, train_bpe_tokenizer
from yollava_agent.toyworld.clip import PATCH_SIZE, pixels
from yollava_agent.toyworld.convert import hf_vision_config, open_clip_visual_to_hf
from yollava_agent.toyworld.language import TASK_WEIGHTS, Example, example
from yollava_agent.toyworld.world import IMAGE_SIZE, Look, Scene, object_map, render

logger = logging.getLogger(__name__)

IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
IMAGE_TOKEN = "<image>"


def train_tokenizer(corpus: Sequence[str], vocab_size: int = 1000) -> LlamaTokenizer:
    """The world's byte-fallback BPE tokenizer, built as the tiny model's is."""
    return train_bpe_tokenizer(list(corpus), vocab_size)


def build_processor(tokenizer: LlamaTokenizer) -> LlavaProcessor:
    """64-px photos in 16-px patches, CLIP's normalisation (as `clip.pixels`), llava-1.5's template."""
    return llava_processor(tokenizer, IMAGE_SIZE, PATCH_SIZE)


def build_model(
    tokenizer: LlamaTokenizer, clip_visual: Any, seed: int
) -> LlavaForConditionalGeneration:
    """The base, its vision tower copied from the world CLIP, the rest freshly initialised."""
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=6,
        num_key_value_heads=6,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=hf_vision_config(clip_visual),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        # The last layer: the world CLIP's patch heads were trained on it, so it names shapes
        # and patterns; llava-1.5's penultimate layer is a choice for CLIPs trained on captions.
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(open_clip_visual_to_hf(clip_visual).state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def chat_text(example: Example, with_answer: bool) -> str:
    """The example as llava-1.5's chat template renders it (prompt, or prompt and answer)."""
    image = f"{IMAGE_TOKEN}\n" if example.scene is not None else ""
    prompt = "USER: " + image + "".join(t + " " for t in example.texts) + "ASSISTANT:"
    return prompt + (f" {example.answer}" if with_answer else "")


@dataclass
class Encoded:
    """An example's ids (image token expanded, answer and end-of-sequence included)."""

    input_ids: list[int]
    answer_start: int
    photo: np.ndarray | None
    kind: str
    patch_words: np.ndarray | None = None
    """(image tokens, 3) token ids of the words for what each patch shows: colour, pattern and
    shape of the object covering it, or its background three times."""


def patch_words(tokenizer: LlamaTokenizer, scene: Scene) -> np.ndarray:
    """Per image patch, the first token of each word naming what it shows (see `Encoded`)."""

    def first(word: str) -> int:
        return tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]

    cells = IMAGE_SIZE // PATCH_SIZE
    owner = object_map(scene, cells).reshape(-1)
    background = [first(scene.background)] * 3
    rows = [
        background
        if o < 0
        else [
            first(scene.objects[o].look.colour),
            first(scene.objects[o].look.pattern),
            first(scene.objects[o].look.shape),
        ]
        for o in owner
    ]
    return np.asarray(rows, dtype=np.int64)


def encode(tokenizer: LlamaTokenizer, ex: Example, rng: np.random.Generator) -> Encoded:
    prompt_ids = tokenizer(chat_text(ex, False))["input_ids"]
    full_ids = tokenizer(chat_text(ex, True))["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        msg = f"The answer of {ex} does not extend its prompt's tokens."
        raise ValueError(msg)
    ids = full_ids + [tokenizer.eos_token_id]
    start = len(prompt_ids)
    photo = None
    if ex.scene is not None:
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        at = ids.index(image_id)
        ids = ids[:at] + [image_id] * IMAGE_TOKENS + ids[at + 1 :]
        start += IMAGE_TOKENS - 1
        photo = render(ex.scene, rng)
        return Encoded(ids, start, photo, ex.kind, patch_words(tokenizer, ex.scene))
    return Encoded(ids, start, photo, ex.kind)


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, answer-only labels, and the photos' pixel values."""
    length = max(len(e.input_ids) for e in items)
    input_ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), length), dtype=torch.long)
    labels = torch.full((len(items), length), -100, dtype=torch.long)
    for row, item in enumerate(items):
        ids = torch.tensor(item.input_ids)
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        labels[row, item.answer_start : len(ids)] = ids[item.answer_start :]
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    photos = [item.photo for item in items if item.photo is not None]
    if photos:
        batch["pixel_values"] = pixels(np.stack(photos))
    words = [item.patch_words for item in items if item.patch_words is not None]
    if words:
        batch["patch_words"] = torch.from_numpy(np.stack(words))
    return batch


def _to(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The batch on the model's device."""
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def _forward_logits(
    model: LlavaForConditionalGeneration, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "patch_words")}
    return model(**inputs).logits


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over each example's answer tokens, averaged per example and then over the
    batch, so that long captions do not outweigh one-word answers."""
    targets = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100, reduction="none"
    )
    counted = (targets != -100).float()
    return ((per_token * counted).sum(1) / counted.sum(1).clamp(min=1)).mean()


def prompt_loss(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], image_token_id: int
) -> torch.Tensor:
    """Next-token cross-entropy over the user turn's text (not its image tokens, not the answer):
    language-model pretraining on the world's text, which an LLM has before LLaVA tuning and a
    from-scratch one needs. Copying a name or a word from earlier in the turn is what it
    teaches first, and what the `named` tasks and concept prompts rely on."""
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    targets = ids[:, 1:].clone()
    skip = (labels[:, 1:] != -100) | (attention[:, 1:] == 0) | (targets == image_token_id)
    targets[skip] = -100
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100
    )


def patch_word_loss(
    image_tokens: torch.Tensor, embeddings: torch.Tensor, words: torch.Tensor
) -> torch.Tensor:
    """How far each projected image token is from naming its patch's words: the cross-entropy
    of its dot products with every word embedding, for each of the three words."""
    logits = image_tokens.reshape(-1, image_tokens.shape[-1]) @ embeddings.T
    targets = words.reshape(-1, words.shape[-1])
    losses = [
        torch.nn.functional.cross_entropy(logits, targets[:, k]) for k in range(targets.shape[1])
    ]
    return torch.stack(losses).mean()


def _batches_of_kind(
    tokenizer: LlamaTokenizer,
    looks: Sequence[Look],
    rng: np.random.Generator,
    batch_size: int,
    mix: Mapping[str, float],
) -> tuple[list[Encoded], list[Encoded]]:
    """A batch split in two: examples with a photo and text-only ones (the model needs both
    pixel values and image tokens, or neither, per forward)."""
    items = [encode(tokenizer, example(rng, looks, mix=mix), rng) for _ in range(batch_size)]
    return [i for i in items if i.photo is not None], [i for i in items if i.photo is None]


def train_base(
    model: LlavaForConditionalGeneration,
    tokenizer: LlamaTokenizer,
    looks: Sequence[Look],
    steps: int,
    batch_size: int,
    seed: int,
    learning_rate: float = 1e-3,
    vision_learning_rate: float = 1e-4,
    patch_weight: float = 0.2,
    prompt_weight: float = 0.5,
    progress: bool = True,
    on_checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 250,
    mix: Mapping[str, float] = TASK_WEIGHTS,
) -> list[float]:
    """Instruction-tune `model` on generated examples (task kinds drawn with the `mix`
    weights); returns the loss every 10 steps."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    vision = list(model.model.vision_tower.parameters())
    vision_ids = {id(p) for p in vision}
    rest = [p for p in model.parameters() if id(p) not in vision_ids]
    optimizer = torch.optim.AdamW(
        [{"params": rest, "lr": learning_rate}, {"params": vision, "lr": vision_learning_rate}],
        weight_decay=0.01,
    )
    warmup = max(1, steps // 25)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup)
            * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        ),
    )
    pad_id = tokenizer.pad_token_id
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    projected: list[torch.Tensor] = []
    hook = model.model.multi_modal_projector.register_forward_hook(
        lambda module, args, output: projected.append(output)
    )
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="base", disable=not progress)
    try:
        for step in bar:
            step_loss = _step(
                model,
                optimizer,
                tokenizer,
                looks,
                rng,
                batch_size,
                pad_id,
                patch_weight,
                prompt_weight,
                image_token_id,
                projected,
                mix,
            )
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            if step % 10 == 0:
                losses.append(step_loss)
                bar.set_postfix(loss=f"{step_loss:.3f}")
                logger.info("base step %d loss %.4f", step, step_loss)
            if on_checkpoint is not None and (step + 1) % checkpoint_every == 0:
                on_checkpoint(step + 1)
                model.train()
    finally:
        hook.remove()
    model.eval()
    return losses


def _step(
    model: LlavaForConditionalGeneration,
    optimizer: torch.optim.Optimizer,
    tokenizer: LlamaTokenizer,
    looks: Sequence[Look],
    rng: np.random.Generator,
    batch_size: int,
    pad_id: int,
    patch_weight: float,
    prompt_weight: float,
    image_token_id: int,
    projected: list[torch.Tensor],
    mix: Mapping[str, float],
) -> float:
    """Gradients of one batch (photo and text-only halves), weighted by their sizes."""
    with_photo, text_only = _batches_of_kind(tokenizer, looks, rng, batch_size, mix)
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for items in (with_photo, text_only):
        if not items:
            continue
        batch = _to(collate(items, pad_id), model)
        projected.clear()
        logits = _forward_logits(model, batch)
        loss = answer_loss(logits, batch["labels"])
        if prompt_weight > 0:
            loss = loss + prompt_weight * prompt_loss(logits, batch, image_token_id)
        if "patch_words" in batch and patch_weight > 0:
            embeddings = model.get_input_embeddings().weight
            loss = loss + patch_weight * patch_word_loss(
                projected[0], embeddings, batch["patch_words"]
            )
        loss = loss * (len(items) / batch_size)
        loss.backward()
        step_loss += loss.item()
    return step_loss


def decided_by_first_token(answer: str) -> bool:
    """True for answers that their first token decides: yes/no sentences and option letters."""
    return answer.split(",")[0] in ("Yes", "No") or len(answer) == 1


@torch.inference_mode()
def generic_accuracy(
    model: LlavaForConditionalGeneration,
    tokenizer: LlamaTokenizer,
    looks: Sequence[Look],
    per_kind: int,
    seed: int,
    batch_size: int = 64,
    prefixes: Sequence[str] = (),
) -> dict[str, float]:
    """Share of held-out generic examples answered right, per task kind and overall.

    Yes/no answers (whose wording varies at random) and two-choice letters count when the first
    answer token is right: that token decides them, as the evaluation reads them. Every other
    answer counts only when all its tokens are (greedy decoding would produce it exactly).
    `prefixes` (concept prompts) go, in turn, first in the user turn of successive examples, as
    the chat model puts an active concept's prompt; the examples themselves stay the same.
    """
    rng = np.random.default_rng(seed)
    pad_id = tokenizer.pad_token_id
    hits: dict[str, list[bool]] = defaultdict(list)
    model.eval()
    for kind in TASK_WEIGHTS:
        examples = [example(rng, looks, kind) for _ in range(per_kind)]
        if prefixes:
            examples = [
                replace(ex, texts=(prefixes[i % len(prefixes)], *ex.texts))
                for i, ex in enumerate(examples)
            ]
        items = [encode(tokenizer, ex, rng) for ex in examples]
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = _to(collate(chunk, pad_id), model)
            predicted = _forward_logits(model, batch)[:, :-1].argmax(-1)
            labels = batch["labels"][:, 1:]
            for row, ex in enumerate(examples[start : start + batch_size]):
                mask = labels[row] != -100
                right = predicted[row][mask] == labels[row][mask]
                hits[kind].append(
                    bool(right[0] if decided_by_first_token(ex.answer) else right.all())
                )
    accuracy = {kind: float(np.mean(values)) for kind, values in hits.items()}
    accuracy["all"] = float(np.mean([v for values in hits.values() for v in values]))
    return accuracy
