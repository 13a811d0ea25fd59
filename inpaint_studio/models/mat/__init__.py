"""MAT (Mask-Aware Transformer, Li et al. CVPR 2022) in plain PyTorch, official key names."""

from .config import DiscriminatorConfig, MatConfig
from .generator import Encoding, FillOutput, MatGenerator, SynthesisNetwork
from .randomness import (
    KeepMaps,
    SampleStreams,
    VariantInputs,
    draw_keep_maps,
    generator_seed,
    seeded_generator,
    variant_inputs,
)

__all__ = [
    "DiscriminatorConfig",
    "Encoding",
    "FillOutput",
    "KeepMaps",
    "MatConfig",
    "MatGenerator",
    "SampleStreams",
    "SynthesisNetwork",
    "VariantInputs",
    "draw_keep_maps",
    "seeded_generator",
    "variant_inputs",
    "generator_seed",
]
