"""InP-Net: one deterministic reconstruction of the hole by a ViT + light conv decoder.

The framed crop is resized to the resolution the weights were trained at. The person's free-form
mask becomes a patch mask for the encoder (a patch is left out when more of it than
``hole_threshold`` is hole); the decoder's full image is pasted back inside the mask only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import CancelFn, EngineError, EngineInfo, Event, Progress, Request, Result, check_cancel
from .device import pick_device
from .framed import FramedEngine
from .framing import framing_params
from .params import Param
from .weights import require_weights, weights_availability

HINT = "train one with `inpaint-studio-train inpnet --data DIR`"


class InpNetEngine(FramedEngine):
    info = EngineInfo(
        id="inpnet",
        title="InP-Net",
        description="Masked-autoencoder ViT with skip connections and a light convolutional decoder: a fast, "
        "deterministic reconstruction. Best on textures and backgrounds it was trained on.",
        params=(
            Param(
                "hole_threshold",
                "float",
                0.25,
                minimum=0.0,
                maximum=0.95,
                step=0.05,
                help="a patch is hidden from the encoder when more than this share of it is hole "
                "(training uses 0.25 unless told otherwise)",
            ),
            *framing_params("crop", default_context=0.5),
        ),
        native_size=128,
        pad_multiple=8,
        training_hint=HINT,
    )

    def __init__(self, weights: str | Path | None = None, device: str | None = None) -> None:
        super().__init__(weights, device)
        self._model: Any = None
        self._device: str | None = None

    @classmethod
    def availability(cls, weights: str | Path | None = None):  # noqa: ANN206 - base signature
        return weights_availability("inpnet", cls.info.title, weights, HINT)

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        from ..models.bundle import BundleError, load_bundle
        from ..models.mae.inpnet import InpNet

        path = require_weights("inpnet", self.info.title, self.weights, HINT)
        try:
            bundle = load_bundle(path, engine="inpnet")
            model = InpNet(**bundle.arch)
            model.load_state_dict(bundle.state_dict)
        except (BundleError, ValueError, RuntimeError, TypeError) as err:
            raise EngineError(f"cannot load InP-Net weights from {path}: {str(err).splitlines()[0]}") from err
        self._device = pick_device(self.device_preference)
        self._model = model.eval().requires_grad_(False).to(self._device)
        self._torch = torch
        cfg = model.cfg
        # the framing works at the resolution the weights were trained at
        self.info = replace(type(self).info, native_size=cfg.img_size, pad_multiple=cfg.patch_size)

    def run(self, request: Request, cancel: CancelFn = lambda: False) -> Iterator[Event]:
        self.resolve(request)  # reject a bad request before loading weights
        yield Progress(0, 2, "loading InP-Net")
        self._load()
        check_cancel(cancel)
        yield from super().run(request, cancel)

    def fill(
        self, image: np.ndarray, mask: np.ndarray, request: Request, params: dict[str, Any], cancel: CancelFn
    ) -> Iterator[Event]:
        torch = self._torch
        threshold = params["hole_threshold"]
        yield Progress(1, 2, "reconstructing")
        with torch.inference_mode():
            x = torch.from_numpy(image).to(self._device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
            m = torch.from_numpy((mask > 0).astype(np.float32)).to(self._device)[None, None]
            out = self._model(x, m, threshold=threshold).clamp(-1, 1)
            pixels = ((out[0].permute(1, 2, 0) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()
        check_cancel(cancel)
        yield Progress(2, 2, "done")
        yield Result(pixels)
