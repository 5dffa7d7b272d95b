"""Convert an open_clip CLIP vision tower into a Hugging Face `CLIPVisionModel`.

A CLIP trained with open_clip (a `VisionTransformer`, `model.visual`) is turned into a
`transformers.CLIPVisionModel` whose hidden states equal the tower's, so that it can serve as a
LLaVA vision tower. `hf_vision_config` maps the architecture, `open_clip_visual_to_hf` copies
the weights and loads them with `strict=True`, so any weight left out or left over is an error
rather than a silently random layer.

Supported: open_clip's default tower, that is exact GELU (no QuickGELU), class-token pooling,
`ln_pre` present, no attentional pooler, no layer scale, plain `ResidualAttentionBlock`s with
`nn.MultiheadAttention`, square images and patches. Anything else is refused with a ValueError
naming the problem (a TypeError if `visual` is not an open_clip `VisionTransformer` at all, e.g.
a timm tower), because an approximate conversion would give a LLaVA that silently sees
different features than the CLIP it was built from.

Not converted, on purpose: the text tower and the image projection `visual.proj` (LLaVA feeds
its projector the tower's hidden states, never CLIP's joint embedding; `proj` can still be
applied by hand to `pooler_output`). Patch dropout is accepted and dropped: open_clip applies it
only in training mode, and the converted model is for inference. No image processor is built:
open_clip's normalisation constants live in its preprocessing config, not in the tower.
"""

from __future__ import annotations

import logging

import torch
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

logger = logging.getLogger(__name__)

__all__ = ["hf_vision_config", "open_clip_visual_to_hf"]


def _layer_norms(visual: VisionTransformer) -> dict[str, nn.Module]:
    """Every LayerNorm the conversion copies, by its open_clip name."""
    norms: dict[str, nn.Module] = {"ln_pre": visual.ln_pre, "ln_post": visual.ln_post}
    for index, block in enumerate(visual.transformer.resblocks):
        norms[f"transformer.resblocks.{index}.ln_1"] = block.ln_1
        norms[f"transformer.resblocks.{index}.ln_2"] = block.ln_2
    return norms


def _check_block(index: int, block: nn.Module, width: int) -> None:
    """Refuse a residual block that `CLIPEncoderLayer` cannot reproduce exactly."""
    where = f"open_clip vision block {index}"
    # CustomResidualAttentionBlock (qk-norm, scaled cosine attention, head scaling...) has no
    # counterpart in HF CLIP.
    if type(block) is not ResidualAttentionBlock:
        msg = f"{where} is a {type(block).__name__}; only ResidualAttentionBlock maps to HF CLIP"
        raise ValueError(msg)
    layer_scale = not all(isinstance(scale, nn.Identity) for scale in (block.ls_1, block.ls_2))
    if layer_scale:
        msg = f"{where} uses layer scale (ls_init_value); HF CLIP has no layer scale"
        raise ValueError(msg)
    act = block.mlp.gelu
    if type(act) is not nn.GELU or act.approximate != "none":
        kind = type(act).__name__
        if isinstance(act, nn.GELU):
            kind = f"GELU(approximate={act.approximate!r})"
        msg = (
            f"{where} uses {kind} as its MLP activation; only exact GELU (nn.GELU, HF "
            "hidden_act='gelu') is supported, any other would change every hidden state"
        )
        raise ValueError(msg)
    attn = block.attn
    plain_attention = isinstance(attn, nn.MultiheadAttention)
    if not plain_attention:
        msg = f"{where} uses {type(attn).__name__} for attention, not nn.MultiheadAttention"
        raise ValueError(msg)
    # HF CLIP projects q, k and v from the same width with biases, and has no extra
    # key/value bias tokens.
    if (
        not attn._qkv_same_embed_dim
        or attn.in_proj_bias is None
        or attn.out_proj.bias is None
        or attn.bias_k is not None
        or attn.add_zero_attn
    ):
        msg = f"{where} has an attention variant HF CLIP cannot express (biases or kdim/vdim)"
        raise ValueError(msg)
    if attn.embed_dim != width or width % attn.num_heads != 0:
        msg = f"{where}: attention width {attn.embed_dim} / {attn.num_heads} heads, not {width}"
        raise ValueError(msg)


def _check_supported(visual: VisionTransformer) -> float:
    """Refuse towers HF CLIP cannot reproduce exactly; return the shared LayerNorm eps."""
    if not isinstance(visual, VisionTransformer):
        msg = (
            f"expected an open_clip VisionTransformer (model.visual), got {type(visual).__name__}; "
            "timm and other towers are not supported"
        )
        raise TypeError(msg)
    if visual.attn_pool is not None:
        msg = "the open_clip tower uses an attentional pooler, which HF CLIP does not have"
        raise ValueError(msg)
    # HF's pooler_output is the class token; an 'avg' or 'none' pool would make it silently
    # differ from open_clip's pooled output.
    if visual.pool_type != "tok":
        msg = (
            f"the open_clip tower pools with pool_type={visual.pool_type!r}; only class-token "
            "pooling ('tok') matches HF CLIP's pooler_output"
        )
        raise ValueError(msg)
    has_ln_pre = not isinstance(visual.ln_pre, nn.Identity)
    if not has_ln_pre:
        msg = "the open_clip tower has no ln_pre (no_ln_pre=True); HF CLIP always has pre_layrnorm"
        raise ValueError(msg)
    if visual.image_size[0] != visual.image_size[1] or visual.patch_size[0] != visual.patch_size[1]:
        msg = (
            f"the open_clip tower has image size {tuple(visual.image_size)} and patch size "
            f"{tuple(visual.patch_size)}; HF CLIP needs square images and patches"
        )
        raise ValueError(msg)
    if visual.conv1.bias is not None:
        msg = "the open_clip tower's patch embedding has a bias; HF CLIP's has none"
        raise ValueError(msg)
    width = visual.conv1.out_channels
    for index, block in enumerate(visual.transformer.resblocks):
        _check_block(index, block, width)

    eps_values: set[float] = set()
    for name, norm in _layer_norms(visual).items():
        # LayerNormFp32 is an nn.LayerNorm too, and computes the same thing in fp32.
        if not isinstance(norm, nn.LayerNorm) or norm.weight is None or norm.bias is None:
            msg = f"open_clip {name} is {type(norm).__name__}; HF CLIP needs an affine LayerNorm"
            raise ValueError(msg)
        if tuple(norm.normalized_shape) != (width,):
            msg = f"open_clip {name} normalises {tuple(norm.normalized_shape)}, not ({width},)"
            raise ValueError(msg)
        eps_values.add(norm.eps)
    # HF CLIP has a single layer_norm_eps for every LayerNorm.
    if len(eps_values) != 1:
        msg = f"the open_clip tower mixes LayerNorm eps {sorted(eps_values)}; HF CLIP has one eps"
        raise ValueError(msg)
    return eps_values.pop()


def hf_vision_config(visual: VisionTransformer) -> CLIPVisionConfig:
    """The `CLIPVisionConfig` of an open_clip vision tower.

    Args:
        visual: `model.visual` of an open_clip CLIP built with default tower options.

    Returns:
        A config with the tower's width, MLP width, depth, heads, image and patch size,
        `hidden_act="gelu"`, its LayerNorm eps and `projection_dim = visual.output_dim`.

    Raises:
        TypeError: `visual` is not an open_clip `VisionTransformer`.
        ValueError: the tower uses something HF CLIP cannot reproduce exactly (QuickGELU, an
            attentional pooler, pooling other than the class token, no `ln_pre`, layer scale,
            custom attention blocks, non-square images or patches, mixed LayerNorm eps).
    """
    eps = _check_supported(visual)
    first = visual.transformer.resblocks[0]
    return CLIPVisionConfig(
        hidden_size=visual.conv1.out_channels,
        intermediate_size=first.mlp.c_fc.out_features,
        projection_dim=visual.output_dim,
        num_hidden_layers=len(visual.transformer.resblocks),
        num_attention_heads=first.attn.num_heads,
        num_channels=visual.conv1.in_channels,
        image_size=visual.image_size[0],
        patch_size=visual.patch_size[0],
        hidden_act="gelu",
        layer_norm_eps=eps,
        attention_dropout=first.attn.dropout,
    )


def _hf_state_dict(visual: VisionTransformer) -> dict[str, torch.Tensor]:
    """The tower's weights under `CLIPVisionModel`'s state-dict names (without `visual.proj`)."""
    state: dict[str, torch.Tensor] = {
        "embeddings.patch_embedding.weight": visual.conv1.weight,
        "embeddings.class_embedding": visual.class_embedding,
        "embeddings.position_embedding.weight": visual.positional_embedding,
        "pre_layrnorm.weight": visual.ln_pre.weight,
        "pre_layrnorm.bias": visual.ln_pre.bias,
        "post_layernorm.weight": visual.ln_post.weight,
        "post_layernorm.bias": visual.ln_post.bias,
    }
    for index, block in enumerate(visual.transformer.resblocks):
        prefix = f"encoder.layers.{index}"
        # nn.MultiheadAttention stacks the q, k and v projections, in that order, in one matrix.
        q_weight, k_weight, v_weight = block.attn.in_proj_weight.chunk(3, dim=0)
        q_bias, k_bias, v_bias = block.attn.in_proj_bias.chunk(3, dim=0)
        state.update(
            {
                f"{prefix}.layer_norm1.weight": block.ln_1.weight,
                f"{prefix}.layer_norm1.bias": block.ln_1.bias,
                f"{prefix}.self_attn.q_proj.weight": q_weight,
                f"{prefix}.self_attn.q_proj.bias": q_bias,
                f"{prefix}.self_attn.k_proj.weight": k_weight,
                f"{prefix}.self_attn.k_proj.bias": k_bias,
                f"{prefix}.self_attn.v_proj.weight": v_weight,
                f"{prefix}.self_attn.v_proj.bias": v_bias,
                f"{prefix}.self_attn.out_proj.weight": block.attn.out_proj.weight,
                f"{prefix}.self_attn.out_proj.bias": block.attn.out_proj.bias,
                f"{prefix}.layer_norm2.weight": block.ln_2.weight,
                f"{prefix}.layer_norm2.bias": block.ln_2.bias,
                f"{prefix}.mlp.fc1.weight": block.mlp.c_fc.weight,
                f"{prefix}.mlp.fc1.bias": block.mlp.c_fc.bias,
                f"{prefix}.mlp.fc2.weight": block.mlp.c_proj.weight,
                f"{prefix}.mlp.fc2.bias": block.mlp.c_proj.bias,
            }
        )
    # load_state_dict copies into the HF parameters, so the two models never share storage.
    return {name: tensor.detach() for name, tensor in state.items()}


def open_clip_visual_to_hf(visual: VisionTransformer) -> CLIPVisionModel:
    """Convert an open_clip vision tower into an HF `CLIPVisionModel` with equal hidden states.

    Args:
        visual: `model.visual` of an open_clip CLIP built with default tower options.

    Returns:
        A `CLIPVisionModel` in eval mode, on the tower's device and in its dtype, whose
        `hidden_states` (with `output_hidden_states=True`) equal the open_clip tokens after
        `ln_pre` and after each residual block, and whose `pooler_output @ visual.proj` equals
        `visual(pixels)`.

    Raises:
        TypeError: `visual` is not an open_clip `VisionTransformer`.
        ValueError: the tower cannot be converted exactly (see `hf_vision_config`).
    """
    config = hf_vision_config(visual)
    reference = visual.conv1.weight
    model = CLIPVisionModel(config).to(device=reference.device, dtype=reference.dtype)
    # strict=True: a weight the mapping missed, or one HF added in a new version, fails here
    # instead of leaving a randomly initialised layer in the tower.
    model.load_state_dict(_hf_state_dict(visual), strict=True)
    logger.info(
        "converted open_clip vision tower: %d layers, width %d, %d px images",
        config.num_hidden_layers,
        config.hidden_size,
        config.image_size,
    )
    return model.eval()
