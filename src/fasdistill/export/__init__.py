"""Export deployable models to the runtimes phones ship with, each checked against PyTorch."""
