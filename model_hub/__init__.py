"""Checkpoints: the embedded default (`model_hub/default/`) and Hugging Face Hub pull/push."""
