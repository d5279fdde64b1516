"""The diffusion maths of the paper, independent of any network: the interpolation z_t = t·x + (1−t)·ε, the three
prediction targets and their conversions, the losses, the x-predicting denoiser, the ODE samplers, and an analytic
Gaussian-mixture oracle whose ideal denoiser is known in closed form."""
