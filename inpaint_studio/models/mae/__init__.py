"""Masked-autoencoder models: the original MAE and InP-Net."""
