"""Persistence for llmserve: SQLite by default, PostgreSQL optionally.

Repositories return frozen records and raise `storage.errors` exceptions; nothing here
knows about protobuf, torch or the server.
"""

from storage.chat import (
    ChatMessageRecord,
    ChatRepository,
    ChatSessionRecord,
    JsonSchemaRecord,
    Sender,
    SessionStatus,
)
from storage.db import Database, sqlite_url
from storage.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    StorageError,
    UnavailableError,
)
from storage.jobs import JobKind, JobRecord, JobRepository, JobState
from storage.luts import (
    LutEntryAdded,
    LutEntryData,
    LutEntryRecord,
    LutRecord,
    LutRepository,
    LutSnapshot,
    LutVersion,
    NewLutEntry,
)
from storage.pagination import Page
from storage.specialists import SpecialistRecord, SpecialistRepository, SpecialistStatus
from storage.tenants import ApiKeyRecord, TenantRecord, TenantRepository

__all__ = [
    "ApiKeyRecord",
    "TenantRecord",
    "TenantRepository",
    "AlreadyExistsError",
    "ChatMessageRecord",
    "ChatRepository",
    "ChatSessionRecord",
    "ConflictError",
    "Database",
    "InvalidArgumentError",
    "JobKind",
    "JobRecord",
    "JobRepository",
    "JobState",
    "JsonSchemaRecord",
    "LutEntryAdded",
    "LutEntryData",
    "LutEntryRecord",
    "LutRecord",
    "LutRepository",
    "LutSnapshot",
    "LutVersion",
    "NewLutEntry",
    "NotFoundError",
    "Page",
    "Sender",
    "SessionStatus",
    "SpecialistRecord",
    "SpecialistRepository",
    "SpecialistStatus",
    "StorageError",
    "UnavailableError",
    "sqlite_url",
]
