"""Using a trained model: model files of every format, threshold calibration."""
