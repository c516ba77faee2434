"""Tenant administration against the database directly, for bootstrapping (no server needed):

    python -m server.admin create-key --tenant alice [--description "laptop"]
    python -m server.admin list-keys [--tenant alice]
    python -m server.admin revoke-key KEY_ID
    python -m server.admin set-quotas alice --requests-per-minute 60 --concurrent-streams 4

Settings come from the same places as the server's (`--config FILE`, LLMSERVE_* variables),
so the command writes to the database the server reads."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from domain.tenancy.config import QuotaLimits
from domain.tenancy.counters import MemoryCounters
from domain.tenancy.keys import ApiKeys
from domain.tenancy.quotas import Quotas
from server import config_source
from server.settings import from_mapping
from storage import Database, TenantRepository

QUOTAS = tuple(f.name for f in dataclasses.fields(QuotaLimits))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server.admin", description="llmserve tenant administration")
    parser.add_argument("--config", type=Path, help="the server's TOML settings file")
    parser.add_argument("--database-url", help="overrides the settings' database")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="create an API key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--description", default="")
    listing = commands.add_parser("list-keys", help="list API keys (never their secrets)")
    listing.add_argument("--tenant", default="")
    revoke = commands.add_parser("revoke-key", help="revoke an API key")
    revoke.add_argument("key_id")
    quotas = commands.add_parser("set-quotas", help="set a tenant's quotas (0 is unlimited)")
    quotas.add_argument("tenant")
    for name in QUOTAS:
        quotas.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name)
    return parser


async def _run(args: argparse.Namespace, database: Database) -> dict:
    tenants = TenantRepository(database)
    keys = ApiKeys(tenants)
    if args.command == "create-key":
        created = await keys.create(args.tenant, args.description)
        return {"key": created.key, "key_id": created.record.key_id, "tenant": created.record.tenant}
    if args.command == "list-keys":
        page = await keys.list(args.tenant, 1000, "")
        return {"api_keys": [{"key_id": k.key_id, "tenant": k.tenant, "description": k.description,
                              "created_at": k.created_at.isoformat(), "revoked": k.revoked} for k in page.items]}
    if args.command == "revoke-key":
        record = await keys.revoke(args.key_id)
        return {"key_id": record.key_id, "tenant": record.tenant, "revoked": record.revoked}
    values = {name: getattr(args, name) for name in QUOTAS if getattr(args, name) is not None}
    limits = await Quotas(tenants, QuotaLimits(), MemoryCounters()).set_limits(args.tenant, values)
    return {"tenant": args.tenant, "quotas": dataclasses.asdict(limits)}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = tomllib.loads(args.config.read_text()) if args.config else {}
    settings = from_mapping(config_source.merge(data, config_source.from_environ(os.environ)))
    url = args.database_url or settings.resolved_database_url
    database = Database(url)
    try:
        database.migrate()
        print(json.dumps(asyncio.run(_run(args, database)), indent=2))
    except Exception as exc:  # noqa: BLE001 - a clear one-line error for the operator
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
