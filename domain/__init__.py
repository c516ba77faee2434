"""The features llmserve serves over its inference core: per-user LUTs, chat sessions,
structured replies, specialist mixtures and SAE training. Features use `models` (the
core) and reach `storage` only through interfaces they own."""
