"""Log lines: one JSON object per line (for collectors) or text (for a terminal), each
carrying the request id, service, method and tenant of the call it was written in.

The standard library's logging throughout; the call comes from `call_context` (a context
variable, so a line written anywhere while serving a call, in its task, names that call).
Fields passed with `extra=` are kept as top-level keys."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

from server import call_context
from server.observability_config import LogConfig

CALL_FIELDS = ("request_id", "service", "method", "tenant")
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", *CALL_FIELDS}


class CallFilter(logging.Filter):
    """Stamps each record with the current call's request id, service, method and tenant."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = call_context.current()
        for name in CALL_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(info, name, "") if info is not None else "")
        return True


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, the call's fields (when in a call), any `extra=`
    fields, and the exception's traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            value = getattr(record, name, "")
            if value:
                out[name] = value
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_"):
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [request_id={rid}]" if rid else line


def announce(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Write one INFO line whatever the level (the address line supervisors wait for)."""
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, message, (), None, extra=fields)
    for handler in logging.getLogger().handlers:
        handler.handle(record)


def use_json(config: LogConfig, stream: TextIO) -> bool:
    if config.format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return config.format == "json"


def configure(config: LogConfig, level: str, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's lines to `stream` (stdout) in the configured format."""
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(config, stream) else TextFormatter())
    handler.addFilter(CallFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler
