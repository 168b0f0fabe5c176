"""Kubernetes naming rules: resource names, namespaces, label keys and values.

Each check returns None when the value is fine, else a short reason.
"""

from __future__ import annotations

import re

_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def dns1123_label(value: str) -> str | None:
    """A DNS-1123 label: lowercase letters, digits and '-', at most 63 characters."""
    if len(value) > 63:
        return "must be at most 63 characters"
    if not _LABEL_1123.match(value):
        return (
            f"invalid name {value!r}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def dns1035_label(value: str) -> str | None:
    """A DNS-1035 label (Service names): like DNS-1123 but starting with a letter."""
    if len(value) > 63:
        return "must be at most 63 characters"
    if not _LABEL_1035.match(value):
        return (
            f"invalid name {value!r}: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return None


def dns1123_subdomain(value: str) -> str | None:
    """A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters."""
    if len(value) > 253:
        return "must be at most 253 characters"
    if not all(_LABEL_1123.match(part) for part in value.split(".")):
        return (
            f"invalid name {value!r}: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_key(key: str) -> str | None:
    """A label or annotation key: optional `prefix/` (a DNS subdomain) and a name."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or dns1123_subdomain(prefix) is not None):
        return f"invalid key {key!r}: the prefix must be a DNS subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"invalid key {key!r}: use at most 63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value(value: str) -> str | None:
    """A label value: empty, or up to 63 letters, digits, '-', '_' and '.'."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            f"invalid label value {value!r}: use at most 63 letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit"
        )
    return None
