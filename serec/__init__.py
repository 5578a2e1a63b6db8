"""serec: pick the best speech enhancer for each noisy clip."""

__version__ = "0.1.0"
