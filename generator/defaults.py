"""Sampling defaults: the CFG scale and solver steps of a call that names none.

CFG_SCALE and STEPS are the paper protocol's (fixtures/protocols/paper.json; a test keeps
the two equal): the human study's settings. The sampler takes both from here; the
attention maps and training's sample grids take the guidance scale (their quick-look
samples use fewer steps, set by their own --sample-steps). A study samples at its own
protocol's settings (the demo protocol's are lighter than these), and the web app uses
these only for a study whose protocol does not parse; the tools that mimic the demo study
(generator.count_eval and the benchmarks) read fixtures/protocols/demo.json instead
(count_eval.demo_sampling). The FID command (generator.metrics) takes STEPS and its own
scale, FID_CFG_SCALE.
"""

# Classifier-free guidance scale s in eps = cond + s * (cond - uncond) (U-ViT's form, so
# s = 0 is the conditional model alone; diffusers' guidance_scale is s + 1).
CFG_SCALE = 3.0
# The FID command's scale: U-ViT's MS-COCO evaluation (configs/mscoco_uvit_small.py,
# sample.scale = 1.0, in the same form), so that an FID made here is comparable with U-ViT's
# (5.95 for U-ViT-S) and with tables that inherit its evaluation. 3.0 trades FID for CLIP score.
FID_CFG_SCALE = 1.0
# DPM-Solver++(2M) steps per image.
STEPS = 50
