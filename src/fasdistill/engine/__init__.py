"""Training engine: a plain PyTorch loop with DDP, AMP, checkpoints and logs."""
