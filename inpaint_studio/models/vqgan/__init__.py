"""VQGAN tokenizer (Esser et al., taming-transformers layout): images <-> grids of code ids."""

from .config import VQGANConfig
from .model import AUTOENCODER_PREFIXES, VQGAN, VQGANOutput, autoencoder_state
from .quantizer import QuantizerOutput, VectorQuantizer

__all__ = [
    "AUTOENCODER_PREFIXES",
    "QuantizerOutput",
    "VQGAN",
    "VQGANConfig",
    "VQGANOutput",
    "VectorQuantizer",
    "autoencoder_state",
]
