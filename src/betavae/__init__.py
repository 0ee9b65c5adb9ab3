"""betavae: learn and measure disentangled representations with the β-VAE."""

__version__ = "0.1.0"
