"""Stable Diffusion 1.5 on diffusers + transformers: loading a person's model offline, schedulers, the
inpainting loop and latent previews, and the ASUKA and MTA models.

Nothing here imports diffusers or transformers at module import (diffusers alone costs about 5 s): the
imports sit inside the functions that need them, which run in an engine's worker.
"""
