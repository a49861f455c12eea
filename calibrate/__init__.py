"""Measure and fit kernel costs: measurements -> calibrated model profiles in models/."""
