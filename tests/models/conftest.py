"""Random-weight stand-ins for the released SAM ViT-B and MobileSAM checkpoint files (no download).

- ``sam_vit_b_file``: the state dict of segment-anything's own ``build_sam_vit_b()`` (1024 px), every tensor
  refilled with random values, saved once per session (~360 MB under pytest's tmp dir).
- ``mobile_sam_file``: ``mobile_sam.pt``'s key names and shapes, written from the spec below (MobileSAM's
  ``mobile_sam/modeling/tiny_vit_sam.py`` + ``build_sam.py`` ``build_sam_vit_t``), NOT derived from our
  remapping, plus segment-anything's prompt encoder and mask decoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

# MobileSAM's build_sam_vit_t: TinyViT(img_size=1024, num_classes=1000, embed_dims=[64, 128, 160, 320],
# depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
# mbconv_expand_ratio=4.0, local_conv_size=3).
MOBILE_SAM_TINYVIT = dict(embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10),
                          window_sizes=(7, 7, 14, 7), mlp_ratio=4, mbconv_expand_ratio=4, local_conv_size=3,
                          num_classes=1000)


def _conv2d_bn(prefix: str, cin: int, cout: int, ks: int, groups: int = 1) -> dict[str, tuple[int, ...]]:
    """MobileSAM ``Conv2d_BN``: a Sequential of ``c`` (Conv2d, no bias) and ``bn`` (BatchNorm2d)."""
    return {
        f"{prefix}.c.weight": (cout, cin // groups, ks, ks),
        f"{prefix}.bn.weight": (cout,),
        f"{prefix}.bn.bias": (cout,),
        f"{prefix}.bn.running_mean": (cout,),
        f"{prefix}.bn.running_var": (cout,),
        f"{prefix}.bn.num_batches_tracked": (),
    }


def _linear(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin), f"{prefix}.bias": (cout,)}


def _norm(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def mobile_sam_image_encoder_spec(spec: dict = MOBILE_SAM_TINYVIT) -> dict[str, tuple[int, ...]]:
    """Key -> shape of MobileSAM's ``image_encoder`` (TinyViT + neck), module by module as in its source."""
    dims, depths, heads, windows = spec["embed_dims"], spec["depths"], spec["num_heads"], spec["window_sizes"]
    out: dict[str, tuple[int, ...]] = {}
    # PatchEmbed.seq = [Conv2d_BN(3, d0/2, 3, 2, 1), GELU, Conv2d_BN(d0/2, d0, 3, 2, 1)]
    out |= _conv2d_bn("patch_embed.seq.0", 3, dims[0] // 2, 3)
    out |= _conv2d_bn("patch_embed.seq.2", dims[0] // 2, dims[0], 3)
    for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
        for j in range(depth):
            block = f"layers.{i}.blocks.{j}"
            if i == 0:  # ConvLayer of MBConv blocks
                hidden = dim * spec["mbconv_expand_ratio"]
                out |= _conv2d_bn(f"{block}.conv1", dim, hidden, 1)
                out |= _conv2d_bn(f"{block}.conv2", hidden, hidden, 3, groups=hidden)
                out |= _conv2d_bn(f"{block}.conv3", hidden, dim, 1)
            else:  # BasicLayer of TinyViTBlocks: Attention(dim, dim // heads, heads, attn_ratio=1, (ws, ws))
                # attention_biases: (heads, number of distinct (|dy|, |dx|) offsets in a ws x ws window = ws^2)
                out[f"{block}.attn.attention_biases"] = (heads[i], windows[i] ** 2)
                out |= _norm(f"{block}.attn.norm", dim)
                out |= _linear(f"{block}.attn.qkv", dim, 3 * dim)
                out |= _linear(f"{block}.attn.proj", dim, dim)
                out |= _norm(f"{block}.mlp.norm", dim)
                out |= _linear(f"{block}.mlp.fc1", dim, dim * spec["mlp_ratio"])
                out |= _linear(f"{block}.mlp.fc2", dim * spec["mlp_ratio"], dim)
                out |= _conv2d_bn(f"{block}.local_conv", dim, dim, spec["local_conv_size"], groups=dim)
        if i < len(dims) - 1:  # PatchMerging(dim -> next dim) at the END of layer i
            nxt = dims[i + 1]
            out |= _conv2d_bn(f"layers.{i}.downsample.conv1", dim, nxt, 1)
            out |= _conv2d_bn(f"layers.{i}.downsample.conv2", nxt, nxt, 3, groups=nxt)
            out |= _conv2d_bn(f"layers.{i}.downsample.conv3", nxt, nxt, 1)
    out |= _norm("norm_head", dims[-1])
    out |= _linear("head", dims[-1], spec["num_classes"])
    # neck: Conv2d(d3, 256, 1, bias=False), LayerNorm2d(256), Conv2d(256, 256, 3, bias=False), LayerNorm2d(256)
    out["neck.0.weight"] = (256, dims[-1], 1, 1)
    out |= _norm("neck.1", 256)
    out["neck.2.weight"] = (256, 256, 3, 3)
    out |= _norm("neck.3", 256)
    return {f"image_encoder.{k}": v for k, v in out.items()}


def sam_prompt_and_decoder_state() -> dict[str, torch.Tensor]:
    """segment-anything's 1024-px prompt encoder and mask decoder (as in ``_build_sam``), random weights."""
    prompt = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                                                                 mlp_dim=2048, num_heads=8),
                          transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    state = {f"prompt_encoder.{k}": v for k, v in prompt.state_dict().items()}
    state |= {f"mask_decoder.{k}": v for k, v in decoder.state_dict().items()}
    return state


def randomize(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Distinct random values in every floating tensor (running_var kept positive), so any misplaced tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            new = torch.randn(value.shape, generator=gen, dtype=value.dtype)
            out[key] = new.abs() + 0.5 if key.endswith("running_var") else new
        else:
            out[key] = torch.randint(0, 1000, value.shape, generator=gen, dtype=value.dtype)
    return out


def random_state_from_spec(spec: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    shapes = {k: torch.empty(s, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
              for k, s in spec.items()}
    return randomize(shapes, seed)


@pytest.fixture(scope="session")
def sam_vit_b_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file laid out like ``sam_vit_b_01ec64.pth``: segment-anything's build_sam_vit_b() state, random values."""
    from segment_anything import sam_model_registry

    state = randomize(sam_model_registry["vit_b"]().state_dict(), seed=0)
    path = tmp_path_factory.mktemp("official") / "sam_vit_b_random.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def mobile_sam_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file laid out like ``mobile_sam.pt`` (keys and shapes from MobileSAM's source), random values."""
    state = random_state_from_spec(mobile_sam_image_encoder_spec(), seed=1)
    state |= randomize(sam_prompt_and_decoder_state(), seed=2)
    path = tmp_path_factory.mktemp("official") / "mobile_sam_random.pt"
    torch.save(state, path)
    return path
