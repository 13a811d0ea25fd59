"""Training-only networks shared by tasks (the app never needs them)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN critic in the layout of taming's ``NLayerDiscriminator``: one logit per image patch.

    ``n_layers`` strided 4x4 convs (the last at stride 1) with LeakyReLU(0.2), 70x70 px patches with
    the default 3. ``norm="batch"`` is taming's (its keys ``main.{i}`` equal taming's
    ``loss.discriminator.*`` once that prefix is stripped, so a public checkpoint's critic can seed
    fine-tuning); ``norm="group"`` suits critics that see fakes alone in one call and reals in another
    (BatchNorm would then normalise each with other statistics) and gradient penalties. ``in_channels``
    is 3 for a VQGAN critic and 4 (RGB + hole mask) for an inpainting one, so it knows where the fill is.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if norm not in ("batch", "group"):
            raise ValueError(f"norm must be batch or group, not {norm!r}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            channels = width * mult
            layers += [
                nn.Conv2d(width * prev, channels, 4, stride=2 if n < n_layers else 1, padding=1, bias=False),
                nn.BatchNorm2d(channels)
                if norm == "batch"
                else nn.GroupNorm(min(32, channels // 4), channels),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DCGAN-style init: convs N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
