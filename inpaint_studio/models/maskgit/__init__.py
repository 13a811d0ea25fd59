"""MaskGIT (Chang et al. 2022): a bidirectional transformer over VQGAN tokens, decoded in parallel."""

from .checkpoint import ENGINE_ID, VQGAN_ENGINE_ID, load_maskgit, load_vqgan, save_maskgit, save_vqgan
from .config import MaskGitConfig
from .decoding import DecodeStep, decode_all, iterative_decode, make_generators
from .masking import MaskedTokens, masked_token_accuracy, masked_token_loss, mvtm_mask
from .schedules import SCHEDULES, jax_masked_counts, mask_ratio, valeoai_reveal_counts
from .transformer import MaskGitTransformer

__all__ = [
    "ENGINE_ID",
    "SCHEDULES",
    "VQGAN_ENGINE_ID",
    "DecodeStep",
    "MaskGitConfig",
    "MaskGitTransformer",
    "MaskedTokens",
    "decode_all",
    "iterative_decode",
    "jax_masked_counts",
    "load_maskgit",
    "load_vqgan",
    "make_generators",
    "mask_ratio",
    "masked_token_accuracy",
    "masked_token_loss",
    "mvtm_mask",
    "save_maskgit",
    "save_vqgan",
    "valeoai_reveal_counts",
]
