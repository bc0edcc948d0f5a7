"""SWAP measurement: speed, weight, accuracy and power of deployable models."""
