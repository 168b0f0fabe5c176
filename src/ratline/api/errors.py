"""Errors and warnings about config, each naming the file, document, resource and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ratline.api.envelope import ResourceKey, Source


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ConfigMessage:
    """One finding about one resource.

    Rendered as `bookinfo/vs.yaml: document 2, VirtualService default/reviews:
    spec.http[0].route[0].weight: must be 0..100`.
    """

    message: str
    source: Source = field(default_factory=Source)
    resource: ResourceKey | None = None
    field: str | None = None
    severity: Severity = Severity.ERROR
    code: str = ""
    """A stable identifier for the kind of finding (e.g. `IST0101` for Istio's analyzers)."""

    def __str__(self) -> str:
        where = self.source.describe()
        if self.resource is not None:
            where += f", {self.resource}"
        head = f"{where}: {self.field}: " if self.field else f"{where}: "
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{prefix}{head}{self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "file": self.source.file,
            "document": self.source.document,
            "resource": str(self.resource) if self.resource else None,
            "field": self.field,
            "message": self.message,
            "text": str(self),
        }


class ConfigError(Exception):
    """Raised when config is refused; carries every error found, not just the first."""

    def __init__(self, messages: list[ConfigMessage]) -> None:
        self.messages = messages
        super().__init__("\n".join(str(m) for m in messages))

    @property
    def errors(self) -> list[ConfigMessage]:
        return [m for m in self.messages if m.severity is Severity.ERROR]
