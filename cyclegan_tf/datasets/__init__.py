"""Datasets that are generated offline (nothing is downloaded)."""
