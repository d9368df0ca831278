"""Sampling defaults: the one place the protocol's CFG scale and solver steps are written.

Every sampling entry point (the sampler, the FID and counting CLIs, the attention maps,
the web app's generation batches) takes its defaults from here, so changing the protocol
is one edit.
"""

# Classifier-free guidance scale s in eps = cond + s * (cond - uncond) (U-ViT's form, so
# s = 0 is the conditional model alone).
CFG_SCALE = 3.0
# DPM-Solver++(2M) steps per image.
STEPS = 50
