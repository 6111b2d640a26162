"""Turning arbitrary Python values into small, JSON-safe, password-free data.

Used at every boundary where live objects become plain data: identities, parameter
values, URLs and messages. Everything here is total: it returns something for any input.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
import uuid
from typing import Any

MAX_TEXT = 1000
MAX_NAME = 200
MAX_ITEMS = 20

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def text(value: object, limit: int = MAX_TEXT) -> str:
    """``str(value)`` capped at ``limit`` characters; never raises (``__str__`` may)."""
    try:
        s = value if type(value) is str else str(value)  # plain str, not a subclass (quoted_name)
    except Exception:
        # Not object.__repr__: its memory address would change every run and split
        # groups keyed on the text.
        s = f"<unprintable {type(value).__name__}>"
    if len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


def strip_address(message: str) -> str:
    """``"<Device at 0x7f12>"`` → ``"<Device>"``: the address changes every run."""
    return _ADDRESS.sub("", message)


def scalar(value: object) -> Any:
    """One identity or parameter value as JSON: UUID, Decimal, dates, bytes → strings."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > MAX_NAME:
            return text(value, MAX_NAME)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return str(value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        try:
            return value.isoformat()
        except Exception:
            return text(value, MAX_NAME)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value[:64])
        return raw.hex() + ("…" if len(value) > 64 else "")
    if isinstance(value, tuple | list):
        return [scalar(v) for v in list(value)[:MAX_ITEMS]]
    return _address_free(text(value, MAX_NAME))


def _address_free(s: str) -> str:
    """A default ``object.__str__`` ends in ``at 0x…``: keep only the class part."""
    return strip_address(s)


def identity(values: object, redact: bool = False) -> list[Any] | None:
    """A primary-key tuple as a JSON list (``[42]``, ``["LH400", 12]``)."""
    if values is None:
        return None
    try:
        items = list(values) if isinstance(values, tuple | list) else [values]
    except Exception:
        return None
    if redact:
        return ["<redacted>" for _ in items]
    return [scalar(v) for v in items[:MAX_ITEMS]]


def json_safe(value: object, depth: int = 0) -> Any:
    """A generic deep conversion for dicts of facts (bounded depth and breadth)."""
    if depth > 6:
        return text(value, MAX_NAME)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= 50:
                break
            out[text(k, MAX_NAME)] = json_safe(v, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return scalar(value)


def url_without_password(url: object) -> str | None:
    """Render a SQLAlchemy URL (or anything URL-like) with the password as ``***``."""
    if url is None:
        return None
    render = getattr(url, "render_as_string", None)
    if render is not None:
        try:
            return text(render(hide_password=True), MAX_TEXT)
        except Exception:
            pass
    return text(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text(url)), MAX_TEXT)


def qualname(cls: object) -> str:
    """``module.QualName`` of a class, for mapper and exception names."""
    try:
        module = getattr(cls, "__module__", None) or ""
        name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", None) or text(cls)
        return text(f"{module}.{name}" if module and module != "builtins" else str(name), MAX_NAME)
    except Exception:
        return "<unknown>"
