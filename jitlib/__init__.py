"""jitlib — pixel-space diffusion with x-prediction (JiT, Li & He 2025): maths, model, training, sampling, evaluation."""

from jitlib.device import autocast_dtype, default_device, doctor, tier

__version__ = "0.1.0"

__all__ = ["__version__", "autocast_dtype", "default_device", "doctor", "tier"]
