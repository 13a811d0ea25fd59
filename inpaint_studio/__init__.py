"""inpaint-studio: a desktop painting and inpainting application."""

__version__ = "0.1.0"
