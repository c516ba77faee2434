"""Per-user lookup tables (LUTs): facts learned in one forward pass and applied per
row inside the batched engine through a `RowHook` (see `domain/lut/service.py`)."""
