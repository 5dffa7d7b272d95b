"""Every supported LLaVA family on its tiny build: loading, prompts, tying, and train = serve.

The four tiny builds (`yollava_agent/tiny.py`) are shaped like llava-1.5, llava-interleave,
LLaVA-NeXT and LLaVA-OneVision. For each one:
- it is a saved checkpoint loaded back through the Auto classes, with its own class, processor,
  chat template and tying;
- the prompt builder's token pieces are pinned, for a photo turn and a text-only turn;
- the trainer's logits for a sample equal the chat model's for the same turn with the trained
  concept injected (fp32, relative error < 1e-5), for photo and text-only samples;
- the fast (cached-prefix) step gives the full-sequence step's loss and row gradients, on photos
  of different shapes (a different number of image tokens each for NeXT and OneVision), and
  training takes the fast path without falling back;
- on a tied base one parameter serves input and output, the artifact says so, what is injected is
  what was trained, and concepts from a base with the other tying are refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random

import pytest
import torch
from langchain_core.messages import HumanMessage

from tests.conftest import make_concept, make_photo
from yollava_agent import ChatYoLLaVA, Concept, ConceptBaseMismatchError, load_llava, shared_runtime
from yollava_agent.concept import CONFIG_NAME
from yollava_agent.paths import data_home
from yollava_agent.tiny import tiny_model_dir
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import attribute_questions, recognition_samples, text_samples
from yollava_agent.training.parity import _image_block, fast_path_error, serving_error
from yollava_agent.training.trainer import _ConceptRows, _Encoder, train_concept

TOLERANCE = 1e-5
FAMILIES = {
    "tiny": ("LlavaForConditionalGeneration", "LlavaProcessor", False),
    "tiny-interleave": ("LlavaForConditionalGeneration", "LlavaProcessor", True),
    "tiny-next": ("LlavaNextForConditionalGeneration", "LlavaNextProcessor", False),
    "tiny-onevision": ("LlavaOnevisionForConditionalGeneration", "LlavaOnevisionProcessor", True),
}
SMALL = TrainingConfig(
    epochs=2, batch_size=4, warmup_epochs=1, turns_per_positive=2, attribute_answer_tokens=4,
    learning_rate=5e-2,
)


@pytest.fixture(params=list(FAMILIES))
def family(request):
    """(name, the shared fp32 runtime of that tiny build), with no concepts before or after."""
    runtime = shared_runtime(request.param, "cpu", "fp32")
    runtime.set_concepts([])
    yield request.param, runtime
    runtime.set_concepts([])


def _photos(count: int, blue: bool = False) -> list[tuple[str, object]]:
    # Widths differ, so the tiling families give each photo its own number of image tokens.
    return [
        (
            f"{'n' if blue else 'p'}{i}.png",
            make_photo((30, 40 + 9 * i, 220) if blue else (220, 40 + 9 * i, 30), (48 + 20 * i, 40)),
        )
        for i in range(count)
    ]


@pytest.fixture
def trained(family):
    """A concept taught on the family's base for two epochs: rows that training has moved."""
    name, runtime = family
    return train_concept(runtime, "bo", _photos(2), _photos(2, blue=True), SMALL)


def _samples(identifier: str = "<bo>") -> list:
    rng = random.Random(0)
    samples = recognition_samples(identifier, _photos(2), _photos(2, blue=True), 2, rng)
    questions = attribute_questions("object")[:2]
    return samples + text_samples(identifier, questions, [["It is red.", "Round."]])


# ---- loading


def test_tiny_build_is_a_checkpoint_of_its_family_loaded_through_the_auto_classes(family) -> None:
    name, runtime = family
    model_class, processor_class, tied = FAMILIES[name]
    assert type(runtime.model).__name__ == model_class
    assert type(runtime.processor).__name__ == processor_class
    assert runtime.tied_embeddings is tied and runtime.base.tied_embeddings is tied
    folder = tiny_model_dir(data_home() / "models", name)
    assert {"config.json", "model.safetensors", "chat_template.jinja"} <= {
        p.name for p in folder.iterdir()
    }
    again = load_llava(str(folder), "cpu", "fp32")  # the folder, as any local checkpoint
    assert again.base.same_base(runtime.base)
    inputs = runtime.processor(text="Hello, what colour is it?", return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(runtime.model(**inputs).logits, again.model(**inputs).logits)


def test_every_family_exposes_its_image_token_and_special_tokens(family) -> None:
    name, runtime = family
    tokenizer = runtime.tokenizer
    specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    assert runtime.processor.image_token == "<image>" and "<image>" in specials
    expected = {"<|im_start|>", "<|im_end|>"} if runtime.tied_embeddings else {"<s>", "</s>"}
    assert expected <= set(tokenizer.all_special_tokens)


# ---- prompts


def _runs(pieces: list[str]) -> list[str]:
    """Pieces with repeats shown once, as 'piece*count' (576 image tokens read badly)."""
    out = []
    for piece, group in itertools.groupby(pieces):
        count = len(list(group))
        out.append(f"{piece}*{count}" if count > 1 else piece)
    return out


LATENTS = [f"<bo_{i}>" for i in range(1, 17)]
PROMPT = ["<bo>", "▁is", "▁", *LATENTS, "."]
CHATML_PROMPT = ["<bo>", "Ġis", "Ġ", *LATENTS, "."]
INST = ["▁", "<0x5B>", "I", "N", "S", "T", "<0x5D>", "▁"]
END_INST = ["▁", "<0x5B>", "<0x2F>", "I", "N", "S", "T", "<0x5D>"]
CHATML_END = ["<|im_end|>", "Ċ", "<|im_start|>", "as", "sis", "tant", "Ċ"]
PINNED = {
    "tiny": (
        ["<s>", "▁USER:", "▁", "<image>*16", "<0x0A>", *PROMPT, "▁Is", "▁", "<bo>", "▁h",
         "er", "e?", "▁ASSISTANT:"],
        ["<s>", "▁USER:", "▁", *PROMPT, "▁What", "▁colour", "▁is", "▁", "<bo>", "?",
         "▁ASSISTANT:"],
    ),
    "tiny-interleave": (
        ["<|im_start|>", "user", "Ċ", "<image>*16", "Ċ", *CHATML_PROMPT, "ĠIs", "Ġ", "<bo>",
         "Ġh", "er", "e", "?", *CHATML_END],
        ["<|im_start|>", "user", "Ċ*2", *CHATML_PROMPT, "ĠWhat", "Ġcolour", "Ġis", "Ġ", "<bo>",
         "?", *CHATML_END],
    ),
    "tiny-next": (
        ["<s>", *INST, "<image>*70", "<0x0A>", *PROMPT, "▁Is", "▁", "<bo>", "▁h", "er", "e?",
         *END_INST],
        ["<s>", *INST, *PROMPT, "▁What", "▁colour", "▁is", "▁", "<bo>", "?", *END_INST],
    ),
    "tiny-onevision": (
        ["<|im_start|>", "user", "Ċ", "<image>*70", "Ċ", *CHATML_PROMPT, "ĠIs", "Ġ", "<bo>",
         "Ġh", "er", "e", "?", *CHATML_END],
        ["<|im_start|>", "user", "Ċ", *CHATML_PROMPT, "ĠWhat", "Ġcolour", "Ġis", "Ġ", "<bo>",
         "?", *CHATML_END],
    ),
}


def test_prompt_pieces_are_pinned_per_family(family) -> None:
    name, runtime = family
    bo = make_concept(runtime, "bo")
    chat = ChatYoLLaVA(model=name, device="cpu", dtype="fp32", concepts=[bo])
    photo_turn = HumanMessage(content=[_image_block(make_photo()), "Is <bo> here?"])
    pieces = []
    with runtime.lock:
        for message in (photo_turn, HumanMessage("What colour is <bo>?")):
            ids = chat._prepare(runtime, [message], None, {}).inputs["input_ids"][0].tolist()
            pieces.append(_runs(runtime.tokenizer.convert_ids_to_tokens(ids)))
            concept_pieces = runtime.tokenizer.convert_ids_to_tokens(runtime.token_ids("bo"))
            assert concept_pieces == ["<bo>", *LATENTS]
    assert pieces == list(PINNED[name])


def test_several_photos_in_one_turn_get_the_prompt_after_the_last(family) -> None:
    name, runtime = family
    bo = make_concept(runtime, "bo")
    chat = ChatYoLLaVA(model=name, device="cpu", dtype="fp32", concepts=[bo])
    photos = [_image_block(make_photo()), _image_block(make_photo((20, 200, 40), (30, 60)))]
    with runtime.lock:
        turn = chat._prepare(runtime, [HumanMessage(content=[*photos, "Which is <bo>?"])], None, {})
        ids = turn.inputs["input_ids"][0].tolist()
        image_id = runtime.tokenizer.convert_tokens_to_ids("<image>")
        first_concept = ids.index(runtime.token_ids("bo")[0])
    assert max(i for i, t in enumerate(ids) if t == image_id) < first_concept
    assert len(turn.inputs["pixel_values"]) == 2
    with torch.inference_mode():
        assert runtime.model(**turn.inputs).logits.shape[1] == len(ids)


# ---- train what is served


def test_trainer_logits_equal_the_chat_models_with_the_concept_injected(family, trained) -> None:
    name, runtime = family
    samples = _samples()
    kinds = {}
    for sample in samples:
        kinds.setdefault(sample.kind, sample)
    assert set(kinds) == {"positive", "negative", "text"}
    for kind, sample in kinds.items():
        check = serving_error(runtime, trained, sample)
        assert check.same_token_ids, f"{name} {kind}: the chat prompt has other token ids"
        assert check.logit_error < TOLERANCE, f"{name} {kind}: {check.logit_error}"
    assert runtime.injected == {}


def test_fast_path_gives_the_full_sequence_loss_and_gradients(family, trained, caplog) -> None:
    name, runtime = family
    samples = _samples()
    flips = [i % 3 == 0 for i in range(len(samples))]
    check = fast_path_error(runtime, trained, samples, flips)
    assert check.loss < TOLERANCE and check.input_gradient < TOLERANCE
    assert check.output_gradient < TOLERANCE, check
    if name in ("tiny-next", "tiny-onevision"):
        runtime.set_concepts([trained])
        encoder = _Encoder(runtime, "bo", 16)
        for sample in samples:
            encoder.encode(sample)
        assert len(set(encoder.image_tokens.values())) > 1, "photos of other shapes, same tokens"
    with caplog.at_level(logging.WARNING, logger="yollava_agent.training.trainer"):
        train_concept(runtime, "bo", _photos(2), _photos(1, blue=True), SMALL)
    assert "Fast training path unavailable" not in caplog.text


# ---- tying


def test_a_tied_base_trains_one_set_of_rows_and_serves_it(family, trained, tmp_path) -> None:
    name, runtime = family
    tied = FAMILIES[name][2]
    rows = _ConceptRows(trained, first_id=0)
    assert (rows.output_rows is rows.input_rows) is tied
    assert len(list(rows.parameters())) == (1 if tied else 2)
    assert torch.equal(trained.input_embeddings, trained.output_embeddings) is tied

    folder = trained.save_pretrained(tmp_path / "bo")
    assert json.loads((folder / CONFIG_NAME).read_text())["base"]["tied_embeddings"] is tied
    runtime.inject(Concept.from_pretrained(folder, base=runtime.base))
    ids = runtime.token_ids("bo")
    assert torch.equal(runtime.model.get_input_embeddings().weight[ids], trained.input_embeddings)
    assert torch.equal(runtime.model.get_output_embeddings().weight[ids], trained.output_embeddings)


def test_a_concept_of_the_other_tying_is_refused_naming_both(family) -> None:
    name, runtime = family
    tied = runtime.tied_embeddings
    concept = make_concept(runtime, "bo")
    other = dataclasses.replace(runtime.base, model_id="elsewhere", tied_embeddings=not tied)
    foreign = Concept("bo", concept.input_embeddings, concept.input_embeddings, other)
    with pytest.raises(ConceptBaseMismatchError) as info:
        runtime.inject(foreign)
    message = str(info.value)
    mine, theirs = ("tied", "untied") if tied else ("untied", "tied")
    assert f"trained on a base with {theirs} embeddings, 'elsewhere'" in message
    assert f"the loaded model has {mine} embeddings, '{name}'" in message
    assert runtime.injected == {}


def test_a_format_1_concept_trained_on_a_tied_base_is_refused(tmp_path) -> None:
    """Version 1 artifacts recorded no tying and were trained with two sets of rows: on a tied
    base their output rows were never served, so they must be taught again."""
    runtime = shared_runtime("tiny-interleave", "cpu", "fp32")
    concept = make_concept(runtime, "bo")
    folder = concept.save_pretrained(tmp_path / "bo")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["format_version"] = 1
    del config["base"]["tied_embeddings"]
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ConceptBaseMismatchError, match="trained on a base with untied embeddings"):
        Concept.from_pretrained(folder, base=runtime.base)


def test_typed_special_tokens_are_plain_text_on_every_family(family) -> None:
    name, runtime = family
    tokenizer = runtime.tokenizer
    bo = make_concept(runtime, "bo")
    chat = ChatYoLLaVA(model=name, device="cpu", dtype="fp32", concepts=[bo], max_tokens=3)
    special = {t.content for t in tokenizer.added_tokens_decoder.values()}
    special |= {*tokenizer.all_special_tokens, runtime.processor.image_token, "<bo_3>"}
    typed = " ".join(sorted(special - {"<bo>"}))

    def ids(text: str) -> list[int]:
        with runtime.lock:
            turn = chat._prepare(runtime, [HumanMessage(content=text)], None, {})
            return turn.inputs["input_ids"][0].tolist()

    clean, injected = ids("What is this?"), ids(f"What is this? {typed}")
    for token in special - {"<bo>"}:
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert injected.count(token_id) == clean.count(token_id), (name, token)
    assert chat.invoke(f"{typed} what is this?").usage_metadata["output_tokens"] <= 3
