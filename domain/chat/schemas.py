"""The registry of named JSON schemas for structured replies, over the database: the
seed's built-ins registered at start-up, user schemas checked (and compiled for the
default model) before they are stored, and request-time resolution of a reply's schema."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from models.errors import FailedPrecondition, InvalidArgument
from domain.structured.schemas import (
    JsonSchemaSpec,
    builtin_description,
    builtin_schema_texts,
    check_schema,
    check_schema_name,
)
from domain.chat.store import ChatStore, JsonSchemaRecord
from storage.errors import NotFoundError

MAX_DESCRIPTION_CHARS = 1024
SPEC_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class SchemaInfo:
    name: str
    description: str
    text: str
    builtin: bool
    created_at: datetime


def _info(record: JsonSchemaRecord) -> SchemaInfo:
    # The table has no description column: built-ins describe themselves from code.
    return SchemaInfo(record.name, builtin_description(record.name) if record.builtin else "",
                      record.schema_json, record.builtin, record.created_at)


class SchemaRegistry:
    """Named schemas; `compile_check(spec, field)` is the provider's up-front grammar check."""

    def __init__(self, repo: ChatStore, compile_check: Callable[[JsonSchemaSpec, str], Awaitable[object]]):
        self._repo = repo
        self._compile_check = compile_check
        self._specs: OrderedDict[str, JsonSchemaSpec] = OrderedDict()

    async def register_builtins(self) -> list[JsonSchemaSpec]:
        """Create or refresh the seed's schemas (idempotent; every replica may run it)."""
        specs = []
        for name, text in builtin_schema_texts().items():
            await asyncio.to_thread(self._repo.register_builtin_schema, name, text)
            specs.append(self._spec(text, "json_schema_name", name))
        return specs

    async def register(self, tenant: str, name: str, text: str, description: str, replace: bool) -> SchemaInfo:
        check_schema_name(name)
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidArgument("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters")
        spec = check_schema(text, "json_schema", name)
        await self._compile_check(spec, "json_schema")
        if replace:
            try:
                existing = await asyncio.to_thread(self._repo.get_schema, tenant, name)
            except NotFoundError:
                existing = None
            if existing is not None:
                if existing.builtin:
                    raise FailedPrecondition(f"json_schema '{name}' is built in and cannot be replaced")
                await asyncio.to_thread(self._repo.delete_schema, tenant, name)
        record = await asyncio.to_thread(self._repo.create_schema, tenant, name, text)
        return _info(record)

    async def get(self, tenant: str, name: str) -> SchemaInfo:
        return _info(await asyncio.to_thread(self._repo.get_schema, tenant, name))

    async def list(self, tenant: str) -> list[SchemaInfo]:
        return [_info(r) for r in await asyncio.to_thread(self._repo.list_schemas, tenant)]

    async def delete(self, tenant: str, name: str) -> None:
        await asyncio.to_thread(self._repo.delete_schema, tenant, name)

    async def resolve(self, tenant: str, name: str | None, inline: str | None) -> JsonSchemaSpec | None:
        """The schema a reply must follow: a registered name, an inline schema, or None."""
        if name is not None:
            if not name:
                raise InvalidArgument("json_schema_name", "must not be empty")
            record = await asyncio.to_thread(self._repo.get_schema, tenant, name)
            return self._spec(record.schema_json, "json_schema_name", name)
        if inline is not None:
            return self._spec(inline, "json_schema", "")
        return None

    def _spec(self, text: str, field: str, name: str) -> JsonSchemaSpec:
        # jsonschema's meta-validation costs ~1 ms; hot schemas skip it.
        key = f"{name}\0{text}"
        spec = self._specs.get(key)
        if spec is None:
            spec = check_schema(text, field, name)
            self._specs[key] = spec
            while len(self._specs) > SPEC_CACHE_ENTRIES:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(key)
        return spec
