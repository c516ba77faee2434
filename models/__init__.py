"""Model-side domain: model registry and loading, the shared device engine, sampling."""
