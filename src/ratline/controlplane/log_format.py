"""The control plane's own log: leveled lines, as text or one JSON object per line.

`RATLINE_LOG_LEVEL` (`debug`, `info`, `warning`, `error`) and `RATLINE_LOG_FORMAT`
(`text`: `time LEVEL logger: message`; `json`: `{"time", "level", "scope", "msg"}` as
istiod's `--log_as_json`) choose it; `configure` refuses other values.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, scope (the logger), msg."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "scope": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, log_format: str) -> None:
    """Set up the root logger; ValueError naming the setting for an unknown value."""
    if level.lower() not in LEVELS:
        raise ValueError(f"RATLINE_LOG_LEVEL={level!r}: expected one of {', '.join(LEVELS)}")
    if log_format.lower() not in FORMATS:
        raise ValueError(f"RATLINE_LOG_FORMAT={log_format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format.lower() == "json" else
                         logging.Formatter(TEXT_FORMAT))  # fmt: skip
    logging.basicConfig(level=LEVELS[level.lower()], handlers=[handler], force=True)
