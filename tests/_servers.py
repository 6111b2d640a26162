"""Where the test servers are, and what happens when one is missing.

Servers (replicas, proxies, second instances) are started by ``tests/servers/*.sh``,
which print ``KEY=value`` lines; ``.ci/run`` exports them. Without a URL a server test
skips with the reason; with ``SA_EXPLAIN_REQUIRE_SERVERS=1`` (set by ``.ci/run``) the
same situation is a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("SA_EXPLAIN_REQUIRE_SERVERS", "") not in ("", "0", "false", "no")


def missing(reason: str) -> None:
    """Skip (locally) or fail (in CI) for a missing server or driver."""
    if REQUIRE:
        pytest.fail(f"required in CI but missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_url(env_name: str) -> str:
    """The URL in ``env_name``; skip or fail with the reason when it is not set."""
    url = os.environ.get(env_name, "").strip()
    if not url:
        missing(
            f"{env_name} is not set: start the servers with `bash tests/servers/up.sh` "
            f"and export what it prints, as .ci/run does"
        )
    return url


def require_module(name: str) -> object:
    """Import a driver module; skip or fail when it is not installed."""
    try:
        return __import__(name)
    except ImportError as exc:
        missing(f"driver {name!r} is not installed ({exc})")
        raise  # unreachable: missing() always raises
