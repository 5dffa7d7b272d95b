"""An open_clip vision tower converted to an HF CLIPVisionModel keeps every hidden state."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.transformer import VisionTransformer
from torch import nn
from transformers import CLIPVisionModel

from yollava_agent.toyworld.convert import hf_vision_config, open_clip_visual_to_hf

# Names unique to this file: open_clip's config registry is global to the test session.
MODEL = "yollava-convert-test-vit"
QUICK_GELU_MODEL = "yollava-convert-test-vit-quickgelu"
VISION_CFG = {"image_size": 64, "layers": 3, "width": 64, "head_width": 16, "patch_size": 8}
TEXT_CFG = {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}
ATOL = 1e-5


@pytest.fixture(scope="module")
def registered_models(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("open_clip_configs")
    base = {"embed_dim": 32, "vision_cfg": VISION_CFG, "text_cfg": TEXT_CFG}
    (folder / f"{MODEL}.json").write_text(json.dumps(base))
    (folder / f"{QUICK_GELU_MODEL}.json").write_text(json.dumps({**base, "quick_gelu": True}))
    open_clip.add_model_config(folder)


def _perturb(visual: VisionTransformer) -> None:
    """Move LayerNorms, biases and embeddings off their init, so a swapped or skipped copy shows.

    Fresh LayerNorms are ones and zeros and attention biases are zeros: copying ln_1 into
    layer_norm2, or the q bias into k, would otherwise go unnoticed.
    """
    with torch.no_grad():
        for name, parameter in visual.named_parameters():
            if parameter.ndim == 1 or name == "positional_embedding":
                parameter.add_(0.2 * torch.randn_like(parameter))


@pytest.fixture(scope="module")
def visual(registered_models: None) -> VisionTransformer:
    torch.manual_seed(0)
    tower = open_clip.create_model(MODEL).visual
    _perturb(tower)
    return tower.eval()


@pytest.fixture(scope="module")
def converted(visual: VisionTransformer) -> CLIPVisionModel:
    return open_clip_visual_to_hf(visual)


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _open_clip_tokens(visual: VisionTransformer, pixels: torch.Tensor) -> list[torch.Tensor]:
    """open_clip's tokens after ln_pre, then after each residual block, run piece by piece."""
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)  # (batch, patches, width)
    class_token = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = torch.cat([class_token, x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    tokens = [x]
    # Older open_clip ran its blocks sequence-first; follow whatever this version does.
    batch_first = getattr(visual.transformer, "batch_first", True)
    for block in visual.transformer.resblocks:
        x = block(x if batch_first else x.transpose(0, 1))
        x = x if batch_first else x.transpose(0, 1)
        tokens.append(x)
    return tokens


def test_config_mirrors_the_tower(visual: VisionTransformer, converted: CLIPVisionModel) -> None:
    config = hf_vision_config(visual)
    assert (config.hidden_size, config.intermediate_size) == (64, 256)
    assert (config.num_hidden_layers, config.num_attention_heads) == (3, 4)
    assert (config.image_size, config.patch_size, config.num_channels) == (64, 8, 3)
    assert config.hidden_act == "gelu"
    assert config.layer_norm_eps == 1e-5
    assert config.projection_dim == visual.output_dim == 32
    assert not converted.training


@torch.no_grad()
def test_every_hidden_state_matches_open_clip(
    visual: VisionTransformer, converted: CLIPVisionModel, pixels: torch.Tensor
) -> None:
    expected = _open_clip_tokens(visual, pixels)
    # The piecewise reference must be open_clip's own computation, not a copy of the mapping.
    pooled = visual.ln_post(expected[-1])[:, 0] @ visual.proj
    torch.testing.assert_close(pooled, visual(pixels), atol=ATOL, rtol=ATOL)

    hidden = converted(pixel_values=pixels, output_hidden_states=True).hidden_states
    assert len(hidden) == len(expected) == 4
    for index, (ours, theirs) in enumerate(zip(hidden, expected, strict=True)):
        assert ours.shape == (2, 65, 64)
        torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=ATOL, msg=f"hidden state {index}")
    # LLaVA's projector reads the penultimate layer (vision_feature_layer=-2).
    torch.testing.assert_close(hidden[-2], expected[-2], atol=ATOL, rtol=ATOL)


@torch.no_grad()
def test_pooled_output_through_proj_is_the_image_embedding(
    visual: VisionTransformer, converted: CLIPVisionModel, pixels: torch.Tensor
) -> None:
    pooled = converted(pixel_values=pixels).pooler_output
    torch.testing.assert_close(pooled @ visual.proj, visual(pixels), atol=ATOL, rtol=ATOL)


def test_quick_gelu_tower_is_refused(registered_models: None) -> None:
    tower = open_clip.create_model(QUICK_GELU_MODEL).visual
    with pytest.raises(ValueError, match=r"QuickGELU.*only exact GELU"):
        hf_vision_config(tower)
    with pytest.raises(ValueError, match=r"QuickGELU"):
        open_clip_visual_to_hf(tower)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attentional_pool": True}, r"attentional pooler"),
        ({"pool_type": "avg"}, r"pool_type='avg'.*class-token"),
        ({"no_ln_pre": True}, r"no ln_pre"),
        ({"ls_init_value": 0.1}, r"layer scale"),
        ({"act_layer": partial(nn.GELU, approximate="tanh")}, r"GELU\(approximate='tanh'\)"),
        ({"qk_norm": True}, r"CustomResidualAttentionBlock"),
    ],
    ids=["attn-pool", "avg-pool", "no-ln-pre", "layer-scale", "tanh-gelu", "qk-norm"],
)
def test_unsupported_towers_are_refused(options: dict[str, object], message: str) -> None:
    tower = VisionTransformer(
        image_size=32,
        patch_size=8,
        width=32,
        layers=1,
        heads=2,
        mlp_ratio=2.0,
        output_dim=16,
        attn_pooler_heads=2,
        **options,
    )
    with pytest.raises(ValueError, match=message):
        open_clip_visual_to_hf(tower)


def test_non_open_clip_tower_is_refused() -> None:
    with pytest.raises(TypeError, match=r"expected an open_clip VisionTransformer.*got Linear"):
        hf_vision_config(nn.Linear(2, 2))  # type: ignore[arg-type]


@torch.no_grad()
def test_save_and_reload_round_trip(
    converted: CLIPVisionModel, pixels: torch.Tensor, tmp_path: Path
) -> None:
    converted.save_pretrained(tmp_path)
    reloaded = CLIPVisionModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.hidden_act == "gelu"
    before = converted(pixel_values=pixels, output_hidden_states=True)
    after = reloaded(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(after.pooler_output, before.pooler_output, atol=0, rtol=0)
    for ours, theirs in zip(after.hidden_states, before.hidden_states, strict=True):
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
