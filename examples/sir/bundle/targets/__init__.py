"""Calibration targets of the SIR example bundle."""
