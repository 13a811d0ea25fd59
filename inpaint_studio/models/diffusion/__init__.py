"""Stable Diffusion parts: loading, schedulers, the ASUKA and MTA models (diffusers, imported lazily)."""
