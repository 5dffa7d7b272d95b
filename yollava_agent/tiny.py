"""The built-in offline tiny LLaVAs: random weights, real architectures, real processors.

They exist so that everything (loading, concept injection, prompts, training, the chat model) runs
offline and fast on a CPU, through exactly the code path a real checkpoint takes: each model is
built from configs, written with `save_pretrained`, and loaded back with `from_pretrained`. One per
family a user loads, each shaped like its hub checkpoint (same classes, vision tower, feature
selection, tokenizer kind, special tokens, chat template and tying), only tiny:

- `tiny`: llava-hf/llava-1.5-7b-hf, `LlavaForConditionalGeneration`, CLIP + Llama, untied;
- `tiny-interleave`: llava-hf/llava-interleave-qwen-0.5b-hf, `LlavaForConditionalGeneration`,
  SigLIP + Qwen2, tied;
- `tiny-next`: llava-hf/llava-v1.6-mistral-7b-hf, `LlavaNextForConditionalGeneration`,
  CLIP + Mistral, untied;
- `tiny-onevision`: llava-hf/llava-onevision-qwen2-0.5b-ov-hf,
  `LlavaOnevisionForConditionalGeneration`, SigLIP + Qwen2, tied.

Parts: 32-px tiles in 8-px patches (16 image tokens per tile; LLaVA-NeXT and OneVision tile a
photo on grids of up to 3 x 3 tiles, so their token count varies with the photo's shape), 2-layer
language models, and tokenizers trained offline with the `tokenizers` library on a small built-in
corpus: byte-fallback BPE with Llama's Metaspace pre-tokenizer for the Llama and Mistral builds,
byte-level BPE with Qwen2's pre-tokenizer and ChatML tokens for the Qwen2 ones. Their answers are
meaningless: they prove mechanics, never quality.

Not done here: any pretraining (a model that knows something is the evaluation benchmark's job),
and videos (OneVision's video processor is there because the processor needs one, never used).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AddedToken,
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    LlavaProcessor,
    MistralConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2Config,
    Qwen2Tokenizer,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

logger = logging.getLogger(__name__)

TINY_MODEL_NAME = "tiny"
TINY_FORMAT_VERSION = 2
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

# llava-interleave-qwen's: ChatML, each text block on a line of its own after the images.
INTERLEAVE_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}{{'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# llava-v1.6-mistral's: Mistral's [INST] turns, no generation prompt, the answer closed by </s>.
NEXT_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

# llava-onevision's (transformers' conversion script): ChatML, text blocks run together.
ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}{{'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
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

# Grids of 32-px tiles up to 3 x 3, as LLaVA-NeXT's 336-px and OneVision's 384-px pinpoints.
_CHATML_CORPUS = ("system user assistant",)

_NEXT_PINPOINTS = [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]]
_ONEVISION_PINPOINTS = [[32 * h, 32 * w] for h in range(1, 4) for w in range(1, 4)]


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


def train_qwen2_tokenizer(corpus: list[str], vocab_size: int, extra: list[str]) -> Qwen2Tokenizer:
    """A Qwen2-style byte-level BPE tokenizer trained offline on `corpus`: no BOS, ChatML's
    `<|im_end|>` as end of turn, `<|endoftext|>` as padding, and the `extra` special tokens."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    merges = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=bpe.get_vocab(), merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    # As Qwen's chat tokenizers: ChatML's markers are special tokens; llava-hf adds `<image>`
    # (and OneVision `<video>`) as special added tokens.
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in extra], special_tokens=True
    )
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


def _clip_vision() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )


def _siglip_vision() -> SiglipVisionConfig:
    # llava-hf's SigLIP towers drop the pooling head; features come from the last layer, all kept.
    return SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        vision_use_head=False,
    )


_TEXT_SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,  # llava-1.5's context: agent prompts with six tools need it
}


# With tied embeddings, tiny random layers and the usual 0.02 init, the residual stream is all input
# embedding and the tied head echoes the last token (a newline) forever: every answer would come
# out empty. A wider init lets the random layers speak.
_TIED_INIT_RANGE = 0.3


def _token_ids(tokenizer: object) -> dict[str, int | None]:
    return {
        "vocab_size": len(tokenizer),  # type: ignore[arg-type]
        "bos_token_id": tokenizer.bos_token_id,  # type: ignore[attr-defined]
        "eos_token_id": tokenizer.eos_token_id,  # type: ignore[attr-defined]
        "pad_token_id": tokenizer.pad_token_id,  # type: ignore[attr-defined]
    }


def _llava_15() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = train_bpe_tokenizer(list(_CORPUS) * 20, vocab_size=640)
    text = LlamaConfig(**_TEXT_SIZES, **_token_ids(tokenizer), tie_word_embeddings=False)
    config = LlavaConfig(
        vision_config=_clip_vision(),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    return LlavaForConditionalGeneration(config), llava_processor(tokenizer, IMAGE_SIZE, PATCH_SIZE)


def _interleave() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = train_qwen2_tokenizer(list(_CORPUS + _CHATML_CORPUS) * 20, 640, ["<image>"])
    text = Qwen2Config(
        **_TEXT_SIZES,
        **_token_ids(tokenizer),
        tie_word_embeddings=True,
        initializer_range=_TIED_INIT_RANGE,
    )
    config = LlavaConfig(
        vision_config=_siglip_vision(),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=True,
    )
    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=INTERLEAVE_CHAT_TEMPLATE,
    )
    return LlavaForConditionalGeneration(config), processor


def _next() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = train_bpe_tokenizer(list(_CORPUS) * 20, vocab_size=640)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    text = MistralConfig(
        **_TEXT_SIZES, **_token_ids(tokenizer), sliding_window=None, tie_word_embeddings=False
    )
    config = LlavaNextConfig(
        vision_config=_clip_vision(),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=_NEXT_PINPOINTS,
    )
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=_NEXT_PINPOINTS,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=NEXT_MISTRAL_CHAT_TEMPLATE,
    )
    return LlavaNextForConditionalGeneration(config), processor


def _onevision() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = train_qwen2_tokenizer(
        list(_CORPUS + _CHATML_CORPUS) * 20, 640, ["<image>", "<video>"]
    )
    text = Qwen2Config(
        **_TEXT_SIZES,
        **_token_ids(tokenizer),
        tie_word_embeddings=True,
        initializer_range=_TIED_INIT_RANGE,
    )
    config = LlavaOnevisionConfig(
        vision_config=_siglip_vision(),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=_ONEVISION_PINPOINTS,
        tie_word_embeddings=True,
    )
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size=size, image_grid_pinpoints=_ONEVISION_PINPOINTS
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=ONEVISION_CHAT_TEMPLATE,
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


TINY_BUILDS: dict[str, Callable[[], tuple[PreTrainedModel, ProcessorMixin]]] = {
    TINY_MODEL_NAME: _llava_15,
    "tiny-interleave": _interleave,
    "tiny-next": _next,
    "tiny-onevision": _onevision,
}
"""Every built-in tiny model by name: what `load_llava(name)` and `--model name` accept."""


def tiny_model_dir(root: Path, name: str = TINY_MODEL_NAME) -> Path:
    """The folder a tiny checkpoint lives in below a models folder."""
    return root / f"{name}-v{TINY_FORMAT_VERSION}"


def build_tiny_llava(folder: Path, seed: int = 0, name: str = TINY_MODEL_NAME) -> Path:
    """Write the tiny checkpoint `name` (model, tokenizer, processor) to `folder` and return it.

    Written to a temporary sibling and renamed into place, so a crash never leaves a half-written
    checkpoint that later loads fail on. An existing complete folder is kept as it is.
    """
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "processor_config.json").exists():
        return folder
    if name not in TINY_BUILDS:
        msg = f"Unknown tiny model {name!r}: the built-in ones are {sorted(TINY_BUILDS)}."
        raise ValueError(msg)
    folder.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model, processor = TINY_BUILDS[name]()
    tokenizer = processor.tokenizer  # type: ignore[attr-defined]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.eval().save_pretrained(staging)
        processor.save_pretrained(staging)
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / "config.json").exists():
            raise
        # Another process finished the same build first; its folder is as good as ours.
    logger.info("Built the offline %s LLaVA in %s", name, folder)
    return folder
