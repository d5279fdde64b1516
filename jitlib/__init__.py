"""jitlib — pixel-space diffusion with x-prediction (JiT, Li & He 2025): maths, model, training, sampling, evaluation.

``jitlib.load(source)`` reads any model (artifact folder, run folder, checkpoint, shipped name, official .pth);
``.pipeline()`` samples it. The maths of the paper is importable from the top level; the model, trainer and tools live in their own modules
(``jitlib.nn.model``, ``jitlib.nn.registry``, ``jitlib.training.trainer``, ...).
"""

from jitlib.artifact import Artifact, load
from jitlib.device import autocast_dtype, default_device, doctor, tier
from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.interpolation import T_EPS, expand_t, interpolate, sample_t, velocity
from jitlib.diffusion.losses import implied_weight, prediction_loss
from jitlib.diffusion.oracle import GaussianMixture
from jitlib.diffusion.sampling import Trajectory, linear_grid, sample
from jitlib.diffusion.targets import (
    TARGETS,
    Prediction,
    Target,
    convert,
    eps_to_v,
    eps_to_x,
    v_to_eps,
    v_to_x,
    x_to_eps,
    x_to_v,
)

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "T_EPS",
    "TARGETS",
    "Denoiser",
    "GaussianMixture",
    "Prediction",
    "Target",
    "Trajectory",
    "__version__",
    "autocast_dtype",
    "convert",
    "default_device",
    "doctor",
    "eps_to_v",
    "eps_to_x",
    "expand_t",
    "implied_weight",
    "interpolate",
    "linear_grid",
    "load",
    "prediction_loss",
    "sample",
    "sample_t",
    "tier",
    "v_to_eps",
    "v_to_x",
    "velocity",
    "x_to_eps",
    "x_to_v",
]
