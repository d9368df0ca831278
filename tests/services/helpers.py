"""Shared by the generation tests: untrained tiny checkpoints and a small demo-like protocol.

The checkpoints are real ones, written by the generator's own ``save_ema`` from a freshly
initialised tiny preset: the images they make are noise-like, but every step from the
weights file to the PNG is the one real checkpoints go through.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_PROTOCOL = ROOT / "fixtures" / "protocols" / "demo.json"
VARIANTS = ("concat-early", "concat-intermediate", "cross-early", "cross-intermediate")
# Names that promise no model config: for tests of workers and parts, where one
# checkpoint serves every variant (a paper name must get a checkpoint that fits it).
NEUTRAL_VARIANTS = ("model-a", "model-b", "model-c", "model-d")


def make_tiny_checkpoint(folder: Path, preset: str = "tiny-cross-early", seed: int = 0) -> Path:
    """Write an untrained checkpoint of a tiny preset into ``folder``; return the folder."""
    import torch

    from generator.checkpoint import save_ema
    from generator.encoders import encoder_specs_for
    from generator.model import PRESETS, build_model

    cfg = PRESETS[preset]
    torch.manual_seed(seed)
    model = build_model(cfg)
    codec, text = encoder_specs_for(cfg)
    save_ema(folder, model.state_dict(), cfg, codec, text, step=0, name=preset)
    return folder


def make_tiny_checkpoints(root: Path) -> dict[str, Path]:
    """One untrained tiny checkpoint per paper variant, its config fitting the variant's name."""
    return {name: make_tiny_checkpoint(root / name, f"tiny-{name}", seed=i) for i, name in enumerate(VARIANTS)}


def small_protocol(*, counts=(1, 2), objects=("circle", "square"), captions: int = 2, images_per_prompt: int = 1,
                   variants: tuple[str, ...] = VARIANTS) -> dict:
    """The demo protocol cut down: len(objects) x len(counts) x images_per_prompt count images
    and ``captions`` captions per variant."""
    protocol = json.loads(DEMO_PROTOCOL.read_text())
    renamed = dict(zip(protocol["variants"], variants, strict=True))
    protocol["variants"] = list(variants)
    analysis = protocol.get("analysis", {})
    if "comparisons" in analysis:
        analysis["comparisons"] = [[renamed[a], renamed[b]] for a, b in analysis["comparisons"]]
    ct = protocol["count_task"]
    ct["objects"] = [o for o in ct["objects"] if o["name"] in objects]
    ct["counts"] = list(counts)
    ct["images_per_prompt"] = images_per_prompt
    protocol["preference_task"]["captions"]["n"] = captions
    protocol["quality_control"]["gold"] = [g for g in protocol["quality_control"]["gold"] if g["object"] in objects]
    protocol["evaluators"]["n"] = 4
    protocol["evaluators"]["overlap"] = 1
    return protocol


def study_on_one_checkpoint(checkpoint: Path, slug: str = "gen"):
    """A small-protocol study of NEUTRAL_VARIANTS, every variant drawing from `checkpoint`
    (registered as "tiny"): ready for a batch. Needs the database."""
    from webapp.generation import services
    from webapp.studies import lifecycle

    study = lifecycle.study_create(
        protocol=small_protocol(variants=NEUTRAL_VARIANTS), slug=slug, base_dir=str(DEMO_PROTOCOL.parent))
    registered = services.checkpoint_register(name="tiny", path=checkpoint)
    for variant in study.variants.all():
        services.variant_assign_checkpoint(variant=variant, checkpoint=registered)
    return study


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
