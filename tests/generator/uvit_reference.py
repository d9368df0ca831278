"""An independent reference for U-ViT's text-to-image network (Bao et al. 2023), for tests.

A functional forward pass in plain torch ops over a state dict keyed by U-ViT's own
tensor names (baofff/U-ViT, libs/uvit_t2i.py with mlp_time_embed=False, as in its
MS-COCO config), written from that architecture's description and sharing nothing with
generator/model.py:

    tokens   [time, context, patches] concatenated first, then pos_embed added to the
             whole sequence (1 + T + N rows); time is the raw sinusoidal embedding
             [cos, sin] of the (possibly fractional) timestep, no MLP
    blocks   depth // 2 in-blocks, a mid block, depth // 2 out-blocks, all on the whole
             sequence; pre-norm x + attn(LN(x)), x + mlp(LN(x)); qkv without bias, exact
             GELU; an out-block first maps cat([x, skip]) (x first) through skip_linear
    output   LayerNorm and decoder_pred on every token, then the 1 + T extras sliced
             off, unpatchify with the per-token layout (p1 p2 C), a 3x3 convolution

Here `depth` is U-ViT's (12 for U-ViT-S: 6 + 1 + 6 blocks; 16 for U-ViT-S/2 Deep).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN_EPS = 1e-5  # nn.LayerNorm's default, which U-ViT keeps

# U-ViT-S on MS-COCO (configs/mscoco_uvit_small.py): 4x32x32 SD latents, 2x2 patches,
# 512 wide, 8 heads, CLIP ViT-L/14 tokens (77 x 768).
UVIT_S = {"img_size": 32, "in_chans": 4, "patch_size": 2, "embed_dim": 512, "num_heads": 8, "mlp_ratio": 4,
          "clip_dim": 768, "num_clip_token": 77}


def official_shapes(
    depth: int, img_size: int, in_chans: int, patch_size: int, embed_dim: int, mlp_ratio: int, clip_dim: int,
    num_clip_token: int, **_: int,
) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of U-ViT's t2i nnet state dict (its `depth`)."""
    D, hidden = embed_dim, embed_dim * mlp_ratio
    n_tokens = 1 + num_clip_token + (img_size // patch_size) ** 2
    shapes: dict[str, tuple[int, ...]] = {
        "pos_embed": (1, n_tokens, D),
        "patch_embed.proj.weight": (D, in_chans, patch_size, patch_size),
        "patch_embed.proj.bias": (D,),
        "context_embed.weight": (D, clip_dim),
        "context_embed.bias": (D,),
    }

    def block(prefix: str, skip: bool) -> None:
        if skip:
            shapes[f"{prefix}.skip_linear.weight"] = (D, 2 * D)
            shapes[f"{prefix}.skip_linear.bias"] = (D,)
        for norm in ("norm1", "norm2"):
            shapes[f"{prefix}.{norm}.weight"] = shapes[f"{prefix}.{norm}.bias"] = (D,)
        shapes[f"{prefix}.attn.qkv.weight"] = (3 * D, D)  # qkv_bias=False
        shapes[f"{prefix}.attn.proj.weight"], shapes[f"{prefix}.attn.proj.bias"] = (D, D), (D,)
        shapes[f"{prefix}.mlp.fc1.weight"], shapes[f"{prefix}.mlp.fc1.bias"] = (hidden, D), (hidden,)
        shapes[f"{prefix}.mlp.fc2.weight"], shapes[f"{prefix}.mlp.fc2.bias"] = (D, hidden), (D,)

    for i in range(depth // 2):
        block(f"in_blocks.{i}", skip=False)
    block("mid_block", skip=False)
    for i in range(depth // 2):
        block(f"out_blocks.{i}", skip=True)
    patch_dim = patch_size**2 * in_chans
    shapes.update({
        "norm.weight": (D,), "norm.bias": (D,),
        "decoder_pred.weight": (patch_dim, D), "decoder_pred.bias": (patch_dim,),
        "final_layer.weight": (in_chans, in_chans, 3, 3), "final_layer.bias": (in_chans,),
    })
    return shapes


def random_official_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for `shapes`, scaled so that activations stay of order one
    through the network (weights ~ N(0, 1/fan_in), LayerNorm affines near 1 and 0, every
    bias and position row non-zero): a wrong token order, skip order or slice then moves
    the output by about as much as the output itself, far beyond float rounding."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        x = torch.randn(shape, generator=g)
        if name == "pos_embed":
            x = 0.5 * x
        elif ".norm" in name or name.startswith("norm."):
            x = 1 + 0.1 * x if name.endswith(".weight") else 0.1 * x
        elif name.endswith(".bias"):
            x = 0.1 * x
        else:  # a Linear or Conv2d weight
            x = x / math.sqrt(math.prod(shape[1:]))
        state[name] = x
    return state


def sinusoidal(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim): [cos(t f_j), sin(t f_j)], f_j = max_period^(-j / (dim/2))."""
    half = dim // 2
    f = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(max_period) / half))
    angle = timesteps.to(torch.float32).reshape(-1, 1) * f.reshape(1, -1)
    return torch.cat([angle.cos(), angle.sin()], dim=1)


def _block(s: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, heads: int,
           skip: torch.Tensor | None = None) -> torch.Tensor:
    D = x.shape[-1]
    if skip is not None:
        x = F.linear(torch.cat([x, skip], dim=-1), s[f"{prefix}.skip_linear.weight"], s[f"{prefix}.skip_linear.bias"])
    B, L, _ = x.shape
    y = F.layer_norm(x, (D,), s[f"{prefix}.norm1.weight"], s[f"{prefix}.norm1.bias"], LN_EPS)
    qkv = F.linear(y, s[f"{prefix}.attn.qkv.weight"])  # (B, L, 3D), laid out as (K=3, H, d)
    q, k, v = qkv.reshape(B, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # each (B, H, L, d)
    att = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v: U-ViT's default mode
    att = att.transpose(1, 2).reshape(B, L, D)
    x = x + F.linear(att, s[f"{prefix}.attn.proj.weight"], s[f"{prefix}.attn.proj.bias"])
    y = F.layer_norm(x, (D,), s[f"{prefix}.norm2.weight"], s[f"{prefix}.norm2.bias"], LN_EPS)
    y = F.linear(F.gelu(F.linear(y, s[f"{prefix}.mlp.fc1.weight"], s[f"{prefix}.mlp.fc1.bias"])),
                 s[f"{prefix}.mlp.fc2.weight"], s[f"{prefix}.mlp.fc2.bias"])
    return x + y


def uvit_t2i_forward(
    s: dict[str, torch.Tensor], x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """U-ViT t2i: x (B, C, H, W), timesteps (B,) float, context (B, T, clip_dim) -> (B, C, H, W)."""
    w = s["patch_embed.proj.weight"]
    D, C, p = w.shape[0], x.shape[1], w.shape[-1]
    patches = F.conv2d(x, w, s["patch_embed.proj.bias"], stride=p).flatten(2).transpose(1, 2)  # (B, N, D)
    time = sinusoidal(timesteps, D).unsqueeze(1)  # (B, 1, D)
    text = F.linear(context, s["context_embed.weight"], s["context_embed.bias"])  # (B, T, D)
    h = torch.cat([time, text, patches], dim=1) + s["pos_embed"]  # (B, 1+T+N, D)
    extras = 1 + text.shape[1]

    half = sum(1 for k in s if k.startswith("in_blocks.") and k.endswith(".norm1.weight"))
    skips = []
    for i in range(half):
        h = _block(s, f"in_blocks.{i}", h, num_heads)
        skips.append(h)
    h = _block(s, "mid_block", h, num_heads)
    for i in range(half):
        h = _block(s, f"out_blocks.{i}", h, num_heads, skip=skips.pop())  # out i pairs with in (half - 1 - i)

    h = F.layer_norm(h, (D,), s["norm.weight"], s["norm.bias"], LN_EPS)
    h = F.linear(h, s["decoder_pred.weight"], s["decoder_pred.bias"])[:, extras:]  # (B, N, p*p*C)
    B, N, _ = h.shape
    g = math.isqrt(N)
    # Token (row r, column c) holds its patch as (p1, p2, C): pixel (r*p + p1, c*p + p2) of channel C.
    img = h.reshape(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)
    return F.conv2d(img, s["final_layer.weight"], s["final_layer.bias"], padding=1)
