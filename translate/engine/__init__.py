"""The training engine: loop, step context, checkpoints, LR schedule, run logging."""
