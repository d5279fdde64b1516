"""Evaluation: generating samples from a trained model and measuring them."""
