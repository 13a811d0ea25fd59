"""Torch-only model architectures, checkpoint I/O and importers of public checkpoints."""
