"""Tenants: API keys (created once, stored as hashes, revocable), per-tenant quotas and
rate limits, and the tenant every stored resource belongs to."""
