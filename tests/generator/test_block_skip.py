"""An out-block merges its long skip as U-ViT does: Linear(2D, D) over cat([x, skip]), in
that order (U-ViT's released weights expect it)."""
import pytest
import torch

from generator.model import PRESETS, Block
from tests.narrow import present


def test_an_out_block_whose_skip_projection_is_the_identity_on_x_returns_x():
    cfg = PRESETS["tiny-concat-early"]
    D = cfg.embed_dim
    blk = Block(cfg, skip=True)
    with torch.no_grad():
        for p in blk.parameters():
            p.zero_()  # attention and MLP then add nothing
        present(blk.skip_linear).weight[:, :D] = torch.eye(D)  # the first D inputs are x's
    x, skip = torch.randn(2, 5, D), torch.randn(2, 5, D)
    torch.testing.assert_close(blk(x, skip=skip), x, rtol=0, atol=0)


def test_an_out_block_called_without_its_skip_says_so():
    cfg = PRESETS["tiny-concat-early"]
    blk = Block(cfg, skip=True)
    with pytest.raises(ValueError, match="skip projection needs its in-block's output"):
        blk(torch.randn(2, 5, cfg.embed_dim))
