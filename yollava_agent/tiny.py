"""The built-in offline `tiny` LLaVA: random weights, real architecture, real processor.

It exists so that everything (loading, concept injection, prompts, training, the chat model) runs
offline and fast on a CPU, through exactly the code path a real checkpoint takes: the model is
built from configs, written with `save_pretrained`, and loaded back with `from_pretrained`.

Parts: a CLIP vision tower (32-px images, 8-px patches: 16 image tokens), a 2-layer Llama, a
byte-fallback BPE tokenizer trained offline with the `tokenizers` library on a small built-in
corpus (Llama-style Metaspace pre-tokenizer, like llava-1.5's), and a `LlavaProcessor` carrying
llava-1.5's chat template. Its answers are meaningless: it proves mechanics, never quality.

Not done here: any pretraining. A model that knows something is the evaluation benchmark's job.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AddedToken,
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

logger = logging.getLogger(__name__)

TINY_MODEL_NAME = "tiny"
TINY_FORMAT_VERSION = 1
IMAGE_SIZE = 32
PATCH_SIZE = 8

# The chat template llava-hf ships with llava-1.5 checkpoints.
LLAVA_15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_CORPUS = (
    "USER: ASSISTANT: Can you tell me if this photo shows it? Yes, it is in the photo.",
    "No, it is not in this picture. Is there a dog, a cat, a mug or a person in the image?",
    "What colour is it? It is brown and white, with a red collar and black spots.",
    "Describe the shape, the material, the size and any markings you can see.",
    "The person has short dark hair, wears glasses, a blue shirt and a friendly smile.",
    "I can see a small round ceramic cup on a wooden table next to the window.",
    "Remember that the birthday is in May. What do you know about my friend?",
    "Hello! How can I help you today? Please show me a photo and ask a question.",
)


def train_bpe_tokenizer(
    corpus: list[str], vocab_size: int, split_punctuation: bool = False
) -> LlamaTokenizer:
    """A Llama-style byte-fallback BPE tokenizer trained offline on `corpus`, with `<image>`
    added and `<unk>` as padding (the tiny model's, and the toyworld base's).

    `split_punctuation` learns no merge across punctuation, so "star." is "star" and ".", the
    word's own token (the tokenizer then still splits text only at spaces, as Llama's does)."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_pieces = [f"<0x{i:02X}>" for i in range(256)]
    bpe = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    if split_punctuation:
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [bpe.pre_tokenizer, pre_tokenizers.Punctuation()]
        )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials + byte_pieces, show_progress=False
    )
    bpe.train_from_iterator(corpus, trainer)
    merges = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    tokenizer = LlamaTokenizer(
        vocab=bpe.get_vocab(), merges=merges, legacy=False, add_bos_token=True
    )
    tokenizer.add_tokens(
        [AddedToken("<image>", special=True, normalized=False)], special_tokens=True
    )
    tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


def llava_processor(tokenizer: LlamaTokenizer, image_size: int, patch_size: int) -> LlavaProcessor:
    """A `LlavaProcessor` for square CLIP photos of `image_size` with llava-1.5's chat template."""
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_15_CHAT_TEMPLATE,
    )


def _build_model(tokenizer: LlamaTokenizer, seed: int) -> LlavaForConditionalGeneration:
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def tiny_model_dir(root: Path) -> Path:
    """The folder the tiny checkpoint lives in below a models folder."""
    return root / f"{TINY_MODEL_NAME}-v{TINY_FORMAT_VERSION}"


def build_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """Write the tiny checkpoint (model, tokenizer, processor) to `folder` and return it.

    Written to a temporary sibling and renamed into place, so a crash never leaves a half-written
    checkpoint that later loads fail on. An existing complete folder is kept as it is.
    """
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "processor_config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe_tokenizer(list(_CORPUS) * 20, vocab_size=640)
    processor = llava_processor(tokenizer, IMAGE_SIZE, PATCH_SIZE)
    model = _build_model(tokenizer, seed)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / "config.json").exists():
            raise
        # Another process finished the same build first; its folder is as good as ours.
    logger.info("Built the offline tiny LLaVA in %s", folder)
    return folder
