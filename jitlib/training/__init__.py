"""Training: the trainer loop and the small helpers it calls (data, EMA, distributed, precision, checkpoints,
typed config and presets, memory budget)."""
