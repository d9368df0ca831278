"""Sampling defaults: the CFG scale and solver steps of a call that names none.

They are the paper protocol's (fixtures/protocols/paper.json; a test keeps the two
equal). The sampler and the FID CLI take both from here; the attention maps and
training's sample grids take the guidance scale (their quick-look samples use fewer steps,
set by their own --sample-steps). A study samples at its own protocol's settings (the demo
protocol's are lighter than these), and the web app uses these only for a study whose protocol
does not parse; the tools that mimic the demo study (generator.count_eval and the
benchmarks) read fixtures/protocols/demo.json instead (count_eval.demo_sampling).
"""

# Classifier-free guidance scale s in eps = cond + s * (cond - uncond) (U-ViT's form, so
# s = 0 is the conditional model alone).
CFG_SCALE = 3.0
# DPM-Solver++(2M) steps per image.
STEPS = 50
