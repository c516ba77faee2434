"""JSON Schema documents for structured replies: the up-front checks a schema must pass,
validation of a generated reply, and the seed's built-in schemas.

A schema is refused before any decoding when it is not valid JSON Schema, its root is not
an object, or it uses a keyword the grammar compiler would silently ignore (so the output
could fail validation afterwards); `grammar.py` refuses what xgrammar cannot compile.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from models.errors import InvalidArgument

MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_CHARS = 65_536
SCHEMA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")

# Keywords xgrammar 0.2.8 accepts but does not enforce (checked one by one against its
# matcher): a grammar built from them would admit documents that fail validation.
UNENFORCED_KEYWORDS = frozenset({
    "not", "uniqueItems", "contains", "minContains", "maxContains", "patternProperties",
    "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies",
    "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
})


@dataclass(frozen=True)
class JsonSchemaSpec:
    """A checked schema: its canonical text (the cache key) and the validator of replies."""

    name: str
    """Registered name, or "" for an inline schema."""
    text: str
    """Compact JSON text: equal schemas share one grammar."""
    schema: dict[str, Any]
    validator: Any

    def validate(self, text: str) -> tuple[Any | None, str | None]:
        """(parsed document, None) when `text` parses and validates, else (None, why)."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            return None, f"not JSON: {exc}"
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(doc))
        if error is not None:
            return None, f"does not validate: {error.message}"
        return doc, None


def check_schema(text: str, field: str, name: str = "") -> JsonSchemaSpec:
    """Parse and check a client's schema text; InvalidArgument naming `field` if refused."""
    if not text or not text.strip():
        raise InvalidArgument(field, "must be a non-empty JSON Schema document")
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidArgument(field, f"must be at most {MAX_SCHEMA_CHARS} characters")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(field, f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(field, f"nests deeper than {MAX_SCHEMA_DEPTH} levels") from None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidArgument(field, 'the schema root must have "type": "object"')
    _check_shape(schema, field)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidArgument(field, f"is not a valid JSON Schema: {exc.message}") from None
    unenforced = sorted(_keywords(schema) & UNENFORCED_KEYWORDS)
    if unenforced:
        raise InvalidArgument(field, f"uses keywords constrained decoding cannot enforce: {', '.join(unenforced)}")
    # Key order is kept: xgrammar emits properties in schema order.
    canonical = json.dumps(schema, separators=(",", ":"))
    return JsonSchemaSpec(name, canonical, schema, cls(schema, format_checker=cls.FORMAT_CHECKER))


def _check_shape(schema: Any, field: str) -> None:
    """Refuse what would exhaust the checkers' recursion or reach outside the document:
    nesting deeper than MAX_SCHEMA_DEPTH, and any `$ref` that is not a local `#...` pointer
    (a remote or file reference is never fetched)."""
    stack = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidArgument(field, f"nests deeper than {MAX_SCHEMA_DEPTH} levels")
        if isinstance(node, dict):
            for key in ("$ref", "$dynamicRef"):
                ref = node.get(key)
                if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
                    raise InvalidArgument(field, f"{key} must point inside the schema (\"#/$defs/...\"), got "
                                                 f"{str(ref)[:80]!r}")
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def check_schema_name(name: str) -> None:
    if not SCHEMA_NAME.match(name or ""):
        raise InvalidArgument("name", "must be 1 to 128 characters from [A-Za-z0-9_.-], starting with a letter")


def _keywords(node: Any) -> set[str]:
    """Every key used at any depth except under `properties`/`$defs` maps, whose keys are
    property or definition names rather than keywords."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for sub in value.values():
                    found |= _keywords(sub)
            elif key in ("enum", "const", "examples", "default"):
                continue  # values, not schemas
            else:
                found.add(key)
                found |= _keywords(value)
    elif isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    return found


# --- the seed's schemas (its Pydantic models written as JSON Schema) --------------------
# UUID fields are strings with format "uuid": xgrammar turns that into the 8-4-4-4-12 hex
# pattern and jsonschema's format checker verifies it. Arrays are bounded (maxItems) so a
# small model cannot repeat items until the token limit (a UUID is ~20 tokens, an edge ~60:
# 8 blocks + 4 edges stay under the default 512 new tokens); string lengths are not, because
# xgrammar expands maxLength into a large grammar (maxLength 64: ~2 s to compile).
_UUID = {"type": "string", "format": "uuid"}
_EDGE = {
    "type": "object",
    "properties": {
        "source_block_id": _UUID,
        "target_block_id": _UUID,
        "edge_type": {"type": "string", "minLength": 1},
    },
    "required": ["source_block_id", "target_block_id", "edge_type"],
    "additionalProperties": False,
}
BUILTIN_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "BlockAPIRequest": ("Create a block of the Constellation graph (seed 004).", {
        "type": "object",
        "properties": {
            "block_type": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "description": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["block_type", "name"],
        "additionalProperties": False,
    }),
    "EdgeAPIRequest": ("Connect two blocks of the Constellation graph (seed 004).", _EDGE),
    "PipelineAPIRequest": ("Create a pipeline of blocks and edges (seed 004).", {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "blocks": {"type": "array", "items": _UUID, "maxItems": 8},
            "edges": {"type": "array", "items": _EDGE, "maxItems": 4},
        },
        "required": ["name", "blocks", "edges"],
        "additionalProperties": False,
    }),
}


def builtin_schema_texts() -> dict[str, str]:
    """Name -> JSON text of each built-in schema, as stored in the database."""
    return {name: json.dumps(schema) for name, (_, schema) in BUILTIN_SCHEMAS.items()}


def builtin_description(name: str) -> str:
    entry = BUILTIN_SCHEMAS.get(name)
    return entry[0] if entry else ""
