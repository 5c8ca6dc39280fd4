"""The network a training run starts from: the backbone's pretrained weights (shared file, torchvision download, or a
given file), BatchNorm statistics re-estimated on the data, or an existing checkpoint to fine-tune."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..checkpoint import load_checkpoint
from ..config import ArchitectureConfig, ModelConfig, PreprocessingConfig
from ..errors import DetectorError
from ..model import MobileNetLSTM, load_backbone_state
from ..paths import imagenet_backbone_file
from ..preprocess import crops_to_tensor
from .items import Item
from .options import TrainOptions


def backbone_state(source: str, backbone: str) -> tuple[dict, list[float], list[float]]:
    """A torchvision-layout state_dict and the input normalisation it expects."""
    if source == "imagenet":
        import torchvision

        enum = {"mobilenet_v3_small": "MobileNet_V3_Small_Weights", "mobilenet_v3_large": "MobileNet_V3_Large_Weights"}
        weights = getattr(torchvision.models, enum[backbone]).IMAGENET1K_V1
        state = weights.get_state_dict(progress=True, check_hash=True)
        return state, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    path = imagenet_backbone_file() if source == "shared" else Path(source)
    if not path.is_file():
        raise DetectorError(f"backbone weights {path} not found")
    # the shared TF-slim conversion expects inputs scaled to [-1, 1] (see shared/models/README.md)
    return load_file(str(path)), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@torch.no_grad()
def reestimate_batchnorm(model: MobileNetLSTM, batches: list[torch.Tensor]) -> None:
    """Give BatchNorm layers real statistics without changing what the pretrained network computes.

    The shared backbone has BatchNorm folded into the convolutions (running mean 0, variance 1, so each BN is
    an identity plus bias). Training mode would normalise by batch statistics and change the function. So we
    measure each BN input's mean and variance on real crops and set the layer to normalise by them and scale
    back: identical output in eval mode, nearly identical in training mode, and meaningful statistics.
    """
    layers = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(m): [0.0, 0.0, 0] for m in layers}

    def hook(module, inputs):
        x = inputs[0].double()
        acc = sums[id(module)]
        acc[0] = acc[0] + x.sum(dim=(0, 2, 3))
        acc[1] = acc[1] + (x * x).sum(dim=(0, 2, 3))
        acc[2] += x.numel() // x.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    model.eval()
    for batch in batches:
        model.encode(batch)
    for h in handles:
        h.remove()
    for m in layers:
        total, squares, count = sums[id(m)]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(1e-6)
        # y = (x - mean) / sqrt(var + eps) * w' + b' must equal the old y = (x - rm) / sqrt(rv + eps) * w + b
        old_scale = m.weight.double() / torch.sqrt(m.running_var.double() + m.eps)
        old_shift = m.bias.double() - m.running_mean.double() * old_scale
        new_std = torch.sqrt(var + m.eps)
        m.running_mean.copy_(mean.float())
        m.running_var.copy_(var.float())
        m.weight.copy_((old_scale * new_std).float())
        m.bias.copy_((old_shift + mean * old_scale).float())


def build_model(options: TrainOptions, items: list[Item], rng: np.random.Generator) -> tuple[MobileNetLSTM, ModelConfig]:
    if options.init_from:
        checkpoint = load_checkpoint(options.init_from)
        config = checkpoint.config
        print(f"fine-tuning from {checkpoint.id} ({checkpoint.revision})", file=sys.stderr)
        return checkpoint.model.train(), config
    arch = ArchitectureConfig(backbone=options.backbone)
    prep = PreprocessingConfig(input_size=options.input_size, tta_flip=options.tta_flip)
    model = MobileNetLSTM(arch)
    if options.backbone_weights and options.backbone_weights != "none":
        state, mean, std = backbone_state(options.backbone_weights, options.backbone)
        load_backbone_state(model, state)
        prep.mean, prep.std = mean, std
        sample = [items[int(i)].crops[0] for i in rng.choice(len(items), size=min(256, len(items)), replace=False)]
        batches = [crops_to_tensor(np.stack(sample[i : i + 64]), prep) for i in range(0, len(sample), 64)]
        reestimate_batchnorm(model, batches)
    return model, ModelConfig(architecture=arch, preprocessing=prep)
