"""The MobileNetV3-LSTM network and its checkpoint format."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")  # the `train` extra: a serving install runs the other tiers
from safetensors.torch import load_file, save_file

from detector.checkpoint import build_untrained, load_checkpoint, load_folder, save_checkpoint
from detector.config import ArchitectureConfig, ModelConfig
from detector.errors import ModelFormatError, ModelNotFoundError
from detector.model import MobileNetLSTM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MobileNetLSTM(ArchitectureConfig()).eval()


@pytest.mark.parametrize("steps", [1, 16])
def test_forward_shapes(model, steps):
    clips = torch.randn(2, steps, 3, 112, 112)
    with torch.no_grad():
        frame_logits, clip_logits = model(clips)
    assert frame_logits.shape == (2, steps) and clip_logits.shape == (2,)
    assert torch.isfinite(frame_logits).all() and torch.isfinite(clip_logits).all()


def test_padded_sequences_ignore_the_padding(model):
    torch.manual_seed(1)
    features = torch.randn(1, 3, 576)
    padded = torch.cat([features, torch.zeros(1, 2, 576)], dim=1)
    with torch.no_grad():
        _, alone = model.sequence_logits(features)
        _, masked = model.sequence_logits(padded, lengths=torch.tensor([3]))
    assert torch.allclose(alone, masked, atol=1e-5)


def test_large_backbone(tmp_path):
    model = MobileNetLSTM(ArchitectureConfig(backbone="mobilenet_v3_large", bidirectional=False)).eval()
    with torch.no_grad():
        frame_logits, clip_logits = model(torch.randn(1, 2, 3, 96, 96))
    assert frame_logits.shape == (1, 2)


def test_checkpoint_round_trip(tmp_path, model):
    config = ModelConfig()
    config.decision.temperature = 1.7
    config.preprocessing.input_size = 160
    save_checkpoint(tmp_path, model, config)
    loaded = load_folder(tmp_path)
    assert loaded.config.to_dict() == config.to_dict()
    clips = torch.randn(1, 4, 3, 160, 160)
    with torch.no_grad():
        for a, b in zip(model(clips), loaded.model(clips)):
            assert torch.equal(a, b)
    assert len(loaded.revision) == 12


def test_mismatched_weights_are_refused(tmp_path, model):
    save_checkpoint(tmp_path, model, ModelConfig())
    state = load_file(str(tmp_path / "model.safetensors"))
    state.pop("clip_head.1.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="missing: clip_head.1.bias.*unexpected: extra.weight"):
        load_folder(tmp_path)


def test_config_mismatch_is_refused(tmp_path, model):
    save_checkpoint(tmp_path, model, ModelConfig())
    data = json.loads((tmp_path / "config.json").read_text())
    data["architecture"]["lstm_hidden"] = 64
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="wrong shape"):
        load_folder(tmp_path)
    data["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="format version"):
        load_folder(tmp_path)
    data["format_version"] = 1
    data["decision"]["bogus"] = 1
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="bogus"):
        load_folder(tmp_path)


def test_unknown_model_names(tmp_path):
    with pytest.raises(ModelNotFoundError):
        load_checkpoint(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match="not a checkpoint folder"):
        load_checkpoint(str(tmp_path))


def test_imagenet_backbone_classifies_like_imagenet_start():
    # The untrained model's backbone starts from the shared ImageNet weights, not from random ones.
    from detector.paths import imagenet_backbone_file

    ckpt = build_untrained()
    reference = load_file(str(imagenet_backbone_file()))  # the default shared folder, as build_untrained's
    assert torch.equal(ckpt.model.features[0][0].weight, reference["features.0.0.weight"])


def test_flip_averaging_is_the_mean_of_a_crop_and_its_mirror_image(face_photo):
    import numpy as np

    from detector.config import PreprocessingConfig
    from detector.media import open_media
    from detector.preprocess import crops_to_array, encode_crops

    with open_media(face_photo) as media:
        crop = np.ascontiguousarray(media.image[:224, :224])
    crops = np.stack([crop, crop[::-1]])  # two different crops
    calls = []

    def encode(array):  # a stand-in encoder that is not mirror-symmetric: the mean of the left half of each image
        calls.append(len(array))
        return array[:, :, :, : array.shape[3] // 2].mean(axis=(2, 3))

    plain = PreprocessingConfig(tta_flip=False)
    flipped = PreprocessingConfig(tta_flip=True)
    assert np.allclose(encode_crops(encode, crops, plain), encode(crops_to_array(crops, plain)))
    mirrored = encode(crops_to_array(crops[:, :, ::-1], plain))
    calls.clear()
    both = encode_crops(encode, crops, flipped)
    assert calls == [4]  # crops and mirror images in one batch
    assert np.allclose(both, (encode(crops_to_array(crops, plain)) + mirrored) / 2)
    assert not np.allclose(both, encode(crops_to_array(crops, plain)))
