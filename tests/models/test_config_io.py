"""One serialisation for every architecture config: JSON round trips, tuples kept, typos refused."""

from __future__ import annotations

import json

import pytest

from inpaint_studio.models.config_io import SavedConfig
from inpaint_studio.models.mae.inpnet import InpNetConfig
from inpaint_studio.models.maskgit import MaskGitConfig
from inpaint_studio.models.mat import DiscriminatorConfig, MatConfig
from inpaint_studio.models.vqgan import VQGANConfig

CONFIGS = [
    MatConfig.tiny(stage1_depths=(1, 2, 1, 2, 1)),
    DiscriminatorConfig(img_resolution=64, channel_base=512),
    MaskGitConfig(grid_size=4, hidden_dim=32, heads=2),
    VQGANConfig(ch=32, ch_mult=(1, 2), attn_resolutions=(8,), resolution=16),
    InpNetConfig(img_size=32, skip_layers=(2,), decoder_channels=(16, 16, 8), extra={"note": 1}),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_round_trips_through_json(config):
    assert isinstance(config, SavedConfig)
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config
    assert "extra" not in data  # not-saved fields stay out
    with pytest.raises(ValueError, match=f"unknown {type(config).config_name} config key"):
        type(config).from_dict({**data, "typo": 1})


def test_tuples_come_back_as_tuples():
    data = json.loads(json.dumps(CONFIGS[3].to_dict()))
    assert data["ch_mult"] == [1, 2]
    assert VQGANConfig.from_dict(data).ch_mult == (1, 2)
    assert InpNetConfig.from_dict(CONFIGS[4].to_dict()).decoder_channels == (16, 16, 8)
