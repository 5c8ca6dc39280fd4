"""The MobileNetV3-LSTM network: a per-frame feature extractor, a per-frame head and a sequence head.

    crops (B, T, 3, S, S) ─► MobileNetV3 features + pooling ─► (B, T, D) ─► frame head ─► frame logits (B, T)
                                                                  └─► LayerNorm ► LSTM ► mean ► clip head ─► clip logit (B,)

With several depths of CLIP's tower (`clip_layers`), each block's class token is layer-normalised, and the whole
frame vector goes through a learned projection (`projection_dim`) before both heads.

An image is a sequence of one. `encode` and `sequence_logits` are separate so all crops of a clip go through the
backbone in one batch and so each half exports to ONNX on its own. With the frozen CLIP backbone (architecture
`clip-lstm`) the features come from CLIP's image tower (detector/clip.py) and this module is the heads only.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .config import ArchitectureConfig


class MobileNetLSTM(nn.Module):
    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        config.validate()
        self.config = config
        if config.frozen_encoder:
            self.features = None
        else:
            self.features = getattr(torchvision.models, config.backbone)(weights=None).features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.projection = _DepthProjection(config) if config.projection_dim else None
        dim = config.head_dim
        self.frame_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(dim, 1))
        self.sequence_norm = nn.LayerNorm(dim)
        self.lstm = nn.LSTM(
            dim,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        directions = 2 if config.bidirectional else 1
        self.clip_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.lstm_hidden * directions, 1))
        if config.reference_size:  # embeddings of training faces (see detector/familiarity.py); not used by forward
            self.register_buffer("reference", torch.zeros(config.reference_size, config.embedding_dim))
        if config.probe:  # a linear probe on the unit embedding, weights then bias (detector/scoring.py); not used by forward
            self.register_buffer("probe", torch.zeros(config.embedding_dim + 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised crops -> (N, D) features."""
        if self.features is None:
            raise RuntimeError("a clip-lstm model has no encoder of its own: embed crops with detector.clip.ClipEncoder")
        return self.pool(self.features(images)).flatten(1)

    def sequence_logits(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) features (zero-padded past `lengths`) -> frame logits (B, T) and clip logits (B,)."""
        if self.projection is not None:
            features = self.projection(features)
        frame_logits = self.frame_head(features).squeeze(-1)
        sequence = self.sequence_norm(features)
        batch, steps = features.shape[:2]
        if lengths is None:
            # explicit zero states sized from the input, so an ONNX export keeps the batch size dynamic
            states = self.lstm.num_layers * (2 if self.lstm.bidirectional else 1)
            zeros = sequence.new_zeros((states, batch, self.lstm.hidden_size))
            outputs, _ = self.lstm(sequence, (zeros, zeros))
            pooled = outputs.mean(dim=1)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(sequence, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, _ = self.lstm(packed)
            outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=steps)
            mask = torch.arange(steps, device=features.device)[None, :] < lengths[:, None].to(features.device)
            pooled = (outputs * mask[..., None]).sum(dim=1) / lengths[:, None].to(outputs.dtype).to(features.device)
        clip_logits = self.clip_head(pooled).squeeze(-1)
        return frame_logits, clip_logits

    def forward(self, clips: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps = clips.shape[:2]
        features = self.encode(clips.flatten(0, 1)).view(batch, steps, -1)
        return self.sequence_logits(features, lengths)


class _DepthProjection(nn.Module):
    """CLIP's unit embedding and the chosen blocks' class tokens, each block layer-normalised (their scales grow with
    depth), projected to `projection_dim`."""

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.embedding_dim, self.blocks = config.embedding_dim, len(config.clip_layers)
        width = (config.feature_dim - self.embedding_dim) // max(self.blocks, 1)
        self.token_norm = nn.LayerNorm(width)
        self.project = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.projection_dim), nn.GELU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedding, tokens = features[..., : self.embedding_dim], features[..., self.embedding_dim :]
        tokens = self.token_norm(tokens.unflatten(-1, (self.blocks, -1))).flatten(-2)
        # the unit embedding scaled to unit variance per component, like the normalised tokens beside it
        return self.project(torch.cat([embedding * self.embedding_dim**0.5, tokens], dim=-1))


def load_backbone_state(model: MobileNetLSTM, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy a torchvision-layout MobileNetV3 state_dict's `features.*` into the model (strict on those keys)."""
    features = {k[len("features.") :]: v for k, v in state_dict.items() if k.startswith("features.")}
    if not features:
        raise ValueError("the state_dict has no 'features.*' keys: not a torchvision MobileNetV3 layout")
    model.features.load_state_dict(features, strict=True)
