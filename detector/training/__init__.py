"""Training and measuring models: datasets, crops, augmentation, the training loop, metrics, evaluation and the cross-source protocol. Needs PyTorch; nothing at inference imports it."""
