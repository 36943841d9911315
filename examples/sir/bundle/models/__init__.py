"""Models of the SIR example bundle."""
