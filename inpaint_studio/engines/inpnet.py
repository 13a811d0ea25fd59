"""InP-Net: one deterministic reconstruction of the hole by a ViT + light conv decoder.

The framed crop is resized to the resolution the weights were trained at. The person's free-form
mask becomes a patch mask for the encoder (a patch is left out when more of it than
``hole_threshold`` is hole); the decoder's full image is pasted back inside the mask only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import CancelFn, EngineError, EngineInfo, Event, Progress, Request, Result, check_cancel
from .framed import Geometry, ModelInput, Params
from .framing import framing_params
from .model_engine import ModelEngine
from .params import Param
from .runtime import Runtime, runtime_params

HINT = "train one with `inpaint-studio-train inpnet --data DIR`"


class InpNetEngine(ModelEngine):
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
            *runtime_params("fp32"),
        ),
        native_size=128,
        pad_multiple=8,
        training_hint=HINT,
    )

    hint = HINT

    def load(self, params: Params, cancel: CancelFn) -> Geometry:
        """The model on the asked-for device and precision, through the shared component cache."""
        cfg = self.component(params, "inpnet", _load_inpnet).cfg
        return Geometry(cfg.img_size, cfg.patch_size)  # framed at the resolution it was trained at

    def fill(self, work: ModelInput, request: Request, params: Params, cancel: CancelFn) -> Iterator[Event]:
        import torch

        image, mask = work.image, work.mask
        threshold = params["hole_threshold"]
        runtime = self._runtime
        yield Progress(1, 2, "reconstructing")
        with torch.inference_mode():
            x = torch.from_numpy(image).to(runtime.device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
            m = torch.from_numpy((mask > 0).astype(np.float32)).to(runtime.device)[None, None]
            out = self._model(x.to(runtime.dtype), m.to(runtime.dtype), threshold=threshold)
            out = out.float().clamp(-1, 1)
            pixels = ((out[0].permute(1, 2, 0) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()
        check_cancel(cancel)
        yield Progress(2, 2, "done")
        yield Result(pixels)


def _load_inpnet(path: Path, runtime: Runtime) -> Any:
    from ..models.bundle import BundleError, load_bundle
    from ..models.mae.inpnet import InpNet

    try:
        bundle = load_bundle(path, engine="inpnet")
        model = InpNet(**bundle.arch)
        model.load_state_dict(bundle.state_dict)
    except (BundleError, ValueError, RuntimeError, TypeError) as err:
        raise EngineError(f"cannot load InP-Net weights from {path}: {str(err).splitlines()[0]}") from err
    return model.eval().requires_grad_(False).to(device=runtime.device, dtype=runtime.dtype)
