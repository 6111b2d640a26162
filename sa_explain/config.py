"""Process-wide settings: which engines are the primary and the replicas, and the probe budget.

Kept in one immutable :class:`Config` swapped atomically by :func:`configure`, so a
hook running on another thread always sees either the old or the new settings, never
half of each.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    AnyEngine = Engine | AsyncEngine


class TwinFinder(Protocol):
    """What :mod:`sa_explain.duplicates` provides: find the operation that raced this one."""

    def find_twin(self, context: Mapping[str, Any], at: float) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Config:
    """The active settings; read with :func:`get_config`, change with :func:`configure`."""

    primary: weakref.ref[Engine] | None = None
    replicas: tuple[weakref.ref[Engine], ...] = ()
    proxies: tuple[weakref.ref[Engine], ...] = ()
    names: Mapping[int, str] = field(default_factory=dict)
    roles: Mapping[int, str] = field(default_factory=dict)
    probes: bool = True
    probe_timeout: float = 0.25
    probe_rate: float = 5.0
    lag: bool = True
    detect_roles: bool = True
    include_params: bool = False
    redact_identity: bool = False
    track_statements: int = 64
    track_writes: int = 4096
    duplicates: TwinFinder | None = None

    def primary_engine(self) -> Engine | None:
        return self.primary() if self.primary is not None else None

    def replica_engines(self) -> list[Engine]:
        return [e for e in (r() for r in self.replicas) if e is not None]

    def configured_role(self, engine: Engine) -> str | None:
        return self.roles.get(id(engine))

    def configured_name(self, engine: Engine) -> str | None:
        return self.names.get(id(engine))


_lock = threading.Lock()
_config = Config()


def get_config() -> Config:
    """The settings in force now (a snapshot: it never changes under you)."""
    return _config


def _sync(engine: AnyEngine) -> Engine:
    sync = getattr(engine, "sync_engine", None)
    return sync if sync is not None else engine  # type: ignore[return-value]


def configure(
    *,
    primary: AnyEngine | None = None,
    replicas: Iterable[AnyEngine] = (),
    proxies: Iterable[AnyEngine] = (),
    names: Mapping[str, AnyEngine] | None = None,
    probes: bool = True,
    probe_timeout: float = 0.25,
    probe_rate: float = 5.0,
    lag: bool = True,
    detect_roles: bool = True,
    include_params: bool = False,
    redact_identity: bool = False,
    track_statements: int = 64,
    track_writes: int = 4096,
    duplicates: TwinFinder | None = None,
    install: bool = True,
) -> Config:
    """Tell sa-explain about your engines and how much it may spend at explain time.

    ``primary``, ``replicas`` and ``proxies`` give roles that win over detection (a
    proxy URL cannot be told from a server by looking at it). ``names`` labels engines
    for the ``bind.name`` field; without it the primary is ``"primary"``, replicas
    ``"replica"``, ``"replica-2"``…

    ``probes`` allows one read-only SELECT by primary key on the primary at explain time,
    on its own connection, within ``probe_timeout`` seconds, at most ``probe_rate`` per
    second. ``lag`` allows reading replica lag within the same budget.

    ``include_params`` adds bound parameter values to explanations; ``redact_identity``
    replaces primary-key values by ``"<redacted>"``.

    Calls :func:`sa_explain.install` unless ``install=False``. Engines are held weakly.
    Raises ``TypeError``/``ValueError`` for arguments that cannot work, at configure
    time, so that no hook fails later.
    """
    global _config
    if probe_timeout <= 0 or probe_timeout > 30:
        raise ValueError(f"probe_timeout must be in (0, 30] seconds, got {probe_timeout!r}")
    if probe_rate < 0:
        raise ValueError(f"probe_rate must be >= 0 per second, got {probe_rate!r}")
    if track_statements < 0 or track_writes < 0:
        raise ValueError("track_statements and track_writes must be >= 0")
    from sqlalchemy.engine import Engine

    role_of: dict[int, str] = {}
    name_of: dict[int, str] = {}
    keep: list[Engine] = []

    def add(engine: Any, role: str, default_name: str) -> weakref.ref[Engine]:
        sync = _sync(engine)
        if not isinstance(sync, Engine):
            raise TypeError(f"expected an Engine or AsyncEngine for the {role}, got {type(engine).__name__}")
        keep.append(sync)
        role_of[id(sync)] = role
        name_of.setdefault(id(sync), default_name)
        return weakref.ref(sync)

    primary_ref = add(primary, "primary", "primary") if primary is not None else None
    replica_refs = tuple(
        add(e, "replica", "replica" if i == 0 else f"replica-{i + 1}") for i, e in enumerate(replicas)
    )
    proxy_refs = tuple(
        add(e, "proxy", "proxy" if i == 0 else f"proxy-{i + 1}") for i, e in enumerate(proxies)
    )
    for label, engine in (names or {}).items():
        sync = _sync(engine)
        if not isinstance(sync, Engine):
            raise TypeError(f"names[{label!r}] is not an Engine")
        keep.append(sync)
        name_of[id(sync)] = str(label)

    new = Config(
        primary=primary_ref,
        replicas=replica_refs,
        proxies=proxy_refs,
        names=name_of,
        roles=role_of,
        probes=probes,
        probe_timeout=float(probe_timeout),
        probe_rate=float(probe_rate),
        lag=lag,
        detect_roles=detect_roles,
        include_params=include_params,
        redact_identity=redact_identity,
        track_statements=int(track_statements),
        track_writes=int(track_writes),
        duplicates=duplicates,
    )
    with _lock:
        _config = new
    from sa_explain import tracking

    tracking.resize_write_log(new.track_writes)
    if install or tracking.installed():
        tracking.install()  # also matches the write-log listeners to track_writes
    return new


def update(**changes: Any) -> Config:
    """Change single settings without restating the engines (used by integrations)."""
    global _config
    with _lock:
        _config = replace(_config, **changes)
        return _config


def reset() -> None:
    """Back to defaults (tests)."""
    global _config
    with _lock:
        _config = Config()
    from sa_explain import tracking

    tracking.resize_write_log(_config.track_writes)
    if tracking.installed():
        tracking.install()
