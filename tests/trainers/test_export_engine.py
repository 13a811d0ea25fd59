"""Export -> engine: the weights the trainer writes are what the inpnet engine runs."""

from __future__ import annotations

import numpy as np

from inpaint_studio.engines.base import Request, Result, at_full_size
from inpaint_studio.engines.inpnet import InpNetEngine
from trainers.config import TrainConfig
from trainers.loop import train
from trainers.tasks.inpnet import InpNetOptions, InpNetTask


def test_trained_weights_fill_through_the_engine(tmp_path, make_photos):
    """Through --weights and through the model store, byte-identical outside the hole."""
    make_photos(tmp_path / "photos", 6)
    config = TrainConfig(data=(str(tmp_path / "photos"),), out=str(tmp_path / "run"), resolution=32, batch_size=2,
                         steps=2, workers=0, val_fraction=0.0, export_to_store=True, name="e2e")  # fmt: skip
    options = InpNetOptions(embed_dim=32, depth=2, num_heads=2, skip_layers=(2, 1), bridge_dim=32,
                            bridge_depth=1, decoder_channels=(16, 16, 8))  # fmt: skip
    result = train(InpNetTask(options, config), config, show_progress=False)
    yy, xx = np.mgrid[0:50, 0:70]
    image = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[15:30, 20:45] = 255
    for source in (result.weights, None):  # --weights, then the model store
        events = [
            at_full_size(e, image)
            for e in InpNetEngine(weights=source, device="cpu").run(Request(image, mask))
        ]
        assert isinstance(events[-1], Result)
        out = events[-1].composited(image)
        assert np.array_equal(out[mask == 0], image[mask == 0])
