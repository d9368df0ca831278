"""IF-U-ViT: a U-shaped ViT noise predictor with early or intermediate text fusion.

One model, four paper variants (Hu, Jia, Rostami, arXiv 2403.16530), chosen by two
fields of one config:

    conditioning  'concat': text tokens join the token sequence and are updated by
                            every joint block (U-ViT's own text-to-image design).
                  'cross':  the image stream (time token + patches) makes the queries,
                            keys/values come from [image stream; LayerNorm(text)];
                            text tokens are never updated inside the U-ViT blocks.
    fusion        'early':        text meets the image in every block (n_image = 0).
                  'intermediate': the first n_image in-blocks and the last n_image
                                  out-blocks see only the image stream; text and image
                                  meet in the middle blocks.
    n_text        transformer blocks that process the text alone before fusion.

Token layout (T text tokens, N patches):
    image stream   [time, patches]           (B, 1+N, D)
    concat joint   [time, text, patches]     (B, 1+T+N, D)
    cross keys     [time, patches, text]     (B, 1+N+T, D)

Parameter counts of the paper presets (exact, checked by tests):
    early        44,692,644 = 13 blocks x 3,150,848 + 6 skip Linear(1024, 512)
                 + patch Conv2d(4, 512, 2, 2) + context Linear(768, 512)
                 + pos_embed (1 + 77 + 256) x 512 + final LayerNorm
                 + Linear(512, 16) + Conv2d(4, 4, 3).
    intermediate 47,843,492 = early + one text block (3,150,848). The position
                 embedding keeps all 334 rows in every variant (it is split into time,
                 text and patch parts), and cross-attention reuses the block's own
                 projections split into q: D->D and kv: D->2D, so conditioning never
                 changes the count.
See generator/profile.py for which detail each FLOP count depends on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

CONDITIONINGS = ("concat", "cross")
FUSIONS = ("early", "intermediate")


#################################################################################
#                                    Config                                     #
#################################################################################


@dataclass(frozen=True)
class UViTConfig:
    img_size: int = 32  # spatial size of the (latent) input, H == W
    in_chans: int = 4
    patch_size: int = 2
    embed_dim: int = 512
    # All U-ViT blocks: depth // 2 in-blocks, 1 mid block, depth // 2 out-blocks. U-ViT's own
    # `depth` counts only the in- and out-blocks, so its depth 12 (U-ViT-S) is 13 here and its
    # depth 16 (U-ViT-S/2 Deep) is 17.
    depth: int = 13
    num_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    text_dim: int = 768  # width of the frozen text encoder's token embeddings
    text_len: int = 77  # number of text tokens
    conditioning: str = "concat"  # 'concat' | 'cross'
    fusion: str = "early"  # 'early' | 'intermediate'
    n_image: int = 0  # image-only blocks at each end of the U (0 for early fusion)
    n_text: int = 0  # text-only blocks before fusion

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {self.conditioning!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.depth < 1 or self.depth % 2 == 0:
            raise ValueError(f"depth must be odd (in + mid + out), got {self.depth}")
        if not 0 <= self.n_image <= self.depth // 2:
            raise ValueError(f"n_image must be in [0, {self.depth // 2}], got {self.n_image}")
        if (self.fusion == "early") != (self.n_image == 0):
            raise ValueError("fusion='early' means n_image == 0; 'intermediate' needs n_image > 0")
        if self.n_text < 0:
            raise ValueError(f"n_text must be >= 0, got {self.n_text}")
        if self.img_size % self.patch_size:
            raise ValueError("img_size must be a multiple of patch_size")
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim must be a multiple of num_heads")

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def n_joint(self) -> int:
        """Joint (text + image) blocks on each side of the mid block."""
        return self.depth // 2 - self.n_image

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; stored with every checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UViTConfig:
        """Inverse of to_dict; unknown keys are an error rather than silently dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown UViTConfig fields: {sorted(unknown)}")
        return cls(**d)


#################################################################################
#                          Embedders and (un)patchify                           #
#################################################################################


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos, sin] of (B,) timesteps (int or float, any range) -> (B, dim) fp32."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def unpatchify(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, h*w, p*p*C) with per-token layout (p1 p2 C) -> (B, C, h*p, w*p)."""
    B, L, PPC = x.shape
    p = math.isqrt(PPC // channels)
    h = math.isqrt(L)
    x = x.reshape(B, h, h, p, p, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p1, w, p2)
    return x.reshape(B, channels, h * p, h * p)


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> tokens, as a strided convolution."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


#################################################################################
#                                    Blocks                                     #
#################################################################################


class Attention(nn.Module):
    """Multi-head attention; self-attention, or cross-attention over [x; context].

    In cross mode the block's bias-free projections are split into q: D->D and
    kv: D->2D, so the parameter count equals the self-attention one. Setting
    `record` to a callable makes the forward compute the weights explicitly (SDPA
    does not return them) and call record(weights) with the (B, H, Lq, Lk) softmax.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, cross: bool):
        super().__init__()
        self.num_heads = num_heads
        self.cross = cross
        if cross:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.record: Callable[[torch.Tensor], None] | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        H = self.num_heads
        if self.cross:
            assert context is not None, "cross-attention block needs the text context"
            q = self.q(x).reshape(B, L, H, D // H).transpose(1, 2)  # (B, H, L, d)
            kv = self.kv(torch.cat([x, context], dim=1))  # (B, L+T, 2D)
            kv = kv.reshape(B, -1, 2, H, D // H).permute(2, 0, 3, 1, 4)  # (2, B, H, L+T, d)
            k, v = kv[0], kv[1]
        else:
            qkv = self.qkv(x).reshape(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # (3, B, H, L, d)
            q, k, v = qkv[0], qkv[1], qkv[2]
        if self.record is None:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, d)
        else:
            weights = (q @ k.transpose(-2, -1) * (D // H) ** -0.5).softmax(dim=-1)  # (B, H, L, Lk)
            self.record(weights.detach())
            out = weights @ v  # (B, H, L, d)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; out-blocks first merge their long skip via Linear(2D, D)."""

    def __init__(self, cfg: UViTConfig, skip: bool = False, cross: bool = False):
        super().__init__()
        D = cfg.embed_dim
        self.skip_linear = nn.Linear(2 * D, D) if skip else None
        self.norm1 = nn.LayerNorm(D)
        self.attn = Attention(D, cfg.num_heads, cfg.qkv_bias, cross)
        self.norm2 = nn.LayerNorm(D)
        self.mlp = Mlp(D, int(D * cfg.mlp_ratio))

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.skip_linear is not None:
            if skip is None:
                raise ValueError("an out-block with a skip projection needs its in-block's output")
            x = self.skip_linear(torch.cat([x, skip], dim=-1))  # (B, L, D)
        # The text goes through this block's first LayerNorm but is not updated.
        ctx = self.norm1(context) if self.attn.cross else None  # (B, T, D)
        x = x + self.attn(self.norm1(x), ctx)  # (B, L, D)
        x = x + self.mlp(self.norm2(x))  # (B, L, D)
        return x


#################################################################################
#                                   The model                                   #
#################################################################################


def block_roles(cfg: UViTConfig) -> list[tuple[str, str]]:
    """(name, role) of the U-ViT blocks in forward order: names 'in.i', 'mid', 'out.i';
    role 'image' (image stream only) or cfg.conditioning (text and image meet there)."""
    half, joint = cfg.depth // 2, cfg.conditioning
    roles = [(f"in.{i}", "image" if i < cfg.n_image else joint) for i in range(half)]
    roles.append(("mid", joint))
    roles += [(f"out.{i}", joint if i < cfg.n_joint else "image") for i in range(half)]
    return roles


class UViT(nn.Module):
    """forward(x (B, C, H, W), timesteps (B,) in [0, 1000), context (B, T, text_dim)) -> eps (B, C, H, W)."""

    def __init__(self, cfg: UViTConfig):
        super().__init__()
        self.cfg = cfg
        D, half = cfg.embed_dim, cfg.depth // 2
        cross = cfg.conditioning == "cross"

        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, D)
        self.context_embed = nn.Linear(cfg.text_dim, D)
        # One row per token of the early-fusion sequence [time, text, patches] in
        # every variant; the rows are split among the three streams.
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.text_len + cfg.num_patches, D))
        self.text_blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_text)])
        # Blocks [0, n_image) of the in-blocks and [n_joint, half) of the out-blocks
        # see only the image stream; the rest (and the mid block) are joint.
        self.in_blocks = nn.ModuleList(
            [Block(cfg, cross=cross and i >= cfg.n_image) for i in range(half)]
        )
        self.mid_block = Block(cfg, cross=cross)
        self.out_blocks = nn.ModuleList(
            [Block(cfg, skip=True, cross=cross and i < cfg.n_joint) for i in range(half)]
        )
        self.norm = nn.LayerNorm(D)
        self.decoder_pred = nn.Linear(D, cfg.patch_size**2 * cfg.in_chans)
        self.final_layer = nn.Conv2d(cfg.in_chans, cfg.in_chans, 3, padding=1)

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def named_blocks(self) -> list[tuple[str, Block, str]]:
        """(name, block, role) of the U-ViT blocks in forward order; see block_roles."""
        blocks = [*self.in_blocks, self.mid_block, *self.out_blocks]
        return [(name, blk, role) for (name, role), blk in zip(block_roles(self.cfg), blocks, strict=True)]

    def _fuse(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image stream -> joint stream, and the context the joint blocks attend to."""
        if self.cfg.conditioning == "concat":
            return torch.cat([h[:, :1], c, h[:, 1:]], dim=1), None  # (B, 1+T+N, D)
        return h, c

    def _unfuse(self, h: torch.Tensor) -> torch.Tensor:
        """Joint stream -> image stream (drops the text tokens of the concat sequence)."""
        if self.cfg.conditioning == "concat":
            return torch.cat([h[:, :1], h[:, 1 + self.cfg.text_len :]], dim=1)  # (B, 1+N, D)
        return h

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        T, k = cfg.text_len, cfg.n_image
        pos = self.pos_embed
        img = self.patch_embed(x) + pos[:, 1 + T :]  # (B, N, D)
        t = timestep_embedding(timesteps, cfg.embed_dim).unsqueeze(1) + pos[:, :1]  # (B, 1, D)
        c = self.context_embed(context) + pos[:, 1 : 1 + T]  # (B, T, D)
        for blk in self.text_blocks:
            c = blk(c)  # (B, T, D)
        h = torch.cat([t.to(img.dtype), img], dim=1)  # (B, 1+N, D)

        skips = []
        for blk in self.in_blocks[:k]:
            h = blk(h)  # (B, 1+N, D)
            skips.append(h)
        h, ctx = self._fuse(h, c)  # (B, 1+T+N, D) concat | (B, 1+N, D) cross
        for blk in self.in_blocks[k:]:
            h = blk(h, context=ctx)
            skips.append(h)
        h = self.mid_block(h, context=ctx)
        for blk in self.out_blocks[: cfg.n_joint]:
            h = blk(h, skips.pop(), context=ctx)
        h = self._unfuse(h)  # (B, 1+N, D)
        for blk in self.out_blocks[cfg.n_joint :]:
            h = blk(h, skips.pop())  # (B, 1+N, D)

        h = self.decoder_pred(self.norm(h))  # (B, 1+N, p*p*C)
        h = unpatchify(h[:, 1:], cfg.in_chans)  # (B, C, H, W)
        return self.final_layer(h)  # (B, C, H, W)


#################################################################################
#                                    Presets                                    #
#################################################################################

_UVIT_S = UViTConfig()  # U-ViT-Small on 4x32x32 latents, CLIP ViT-L/14 text (77 x 768)
_TINY = UViTConfig(  # 3x32x32 pixels, all-MiniLM-L6-v2 text (16 x 384); cheap on a CPU
    img_size=32, in_chans=3, patch_size=4, embed_dim=128, depth=7, num_heads=4,
    text_dim=384, text_len=16,
)


def _variant(base: UViTConfig, conditioning: str, n_text: int, n_image: int) -> UViTConfig:
    fusion = "intermediate" if n_image else "early"
    return dataclasses.replace(base, conditioning=conditioning, fusion=fusion, n_text=n_text, n_image=n_image)


PRESETS: dict[str, UViTConfig] = {}
for _cond in CONDITIONINGS:
    PRESETS[f"uvit-s-{_cond}-early"] = _variant(_UVIT_S, _cond, 0, 0)
    PRESETS[f"uvit-s-{_cond}-intermediate"] = _variant(_UVIT_S, _cond, 1, 4)  # paper's [N_text, N_image] = [1, 4]
    PRESETS[f"uvit-s-{_cond}-ablation-n0-i4"] = _variant(_UVIT_S, _cond, 0, 4)
    PRESETS[f"uvit-s-{_cond}-ablation-n1-i0"] = _variant(_UVIT_S, _cond, 1, 0)
# U-ViT-S/2 Deep (U-ViT's README: MS-COCO, --config.nnet.depth=16, 8 + 1 + 8 blocks), so that
# its released weights import too; not one of the paper's models.
PRESETS["uvit-s-deep-concat-early"] = dataclasses.replace(PRESETS["uvit-s-concat-early"], depth=17)
for _cond in CONDITIONINGS:
    PRESETS[f"tiny-{_cond}-early"] = _variant(_TINY, _cond, 0, 0)
    PRESETS[f"tiny-{_cond}-intermediate"] = _variant(_TINY, _cond, 1, 2)
del _cond

PAPER_VARIANTS: tuple[str, ...] = (
    "uvit-s-concat-early",
    "uvit-s-concat-intermediate",
    "uvit-s-cross-early",
    "uvit-s-cross-intermediate",
)


def build_model(cfg: UViTConfig | str) -> UViT:
    """A freshly initialised UViT from a config or a PRESETS name."""
    if isinstance(cfg, str):
        cfg = PRESETS[cfg]
    return UViT(cfg)
