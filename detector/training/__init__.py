"""The training shell: datasets, crops, augmentation, the training loop, metrics, evaluation, the cross-source
protocol and the ONNX export, with its own command line (`python -m detector.training`, detector/training/cli.py).
Needs PyTorch (the `train` extra); the serving package never imports it (tests/integration/test_serving_without_torch.py)."""
