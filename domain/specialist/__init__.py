"""Specialist experts: low-rank residual adapters per decoder layer, mixed with the
frozen generalist by a learned gate per layer (seed 003)."""
