"""Using a trained model: model files of every format, threshold calibration."""

from fasdistill.infer import cascade  # registers the cascade with open_model

del cascade
