"""Reserve auditor: verifiable backing of yield-bearing tokens from chain state."""

__version__ = "0.1.0"
