"""Helpers to run the emulated nRF in tests (see fixtures.py)."""
