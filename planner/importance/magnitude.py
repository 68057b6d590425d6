"""Weight-magnitude importance of the output channels of one layer."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def filter_l1_norms(module: nn.Module) -> torch.Tensor:
    """L1 norm of each output channel's weights (a conv filter or a linear row)."""
    weight = module.weight.detach()
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        weight = weight.transpose(0, 1)
    return weight.flatten(1).abs().sum(dim=1).float()
