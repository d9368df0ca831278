"""IF-U-ViT text-to-image diffusion (arXiv 2403.16530): models, encoders, data, training, sampling.

This package imports no Django; the web app calls `generator.sample`.
"""

__version__ = "0.1.0"
