#!/usr/bin/env python3
"""Developer entry point: ``python3 dev.py demo`` and ``python3 dev.py test``.

Needs nothing but Python >= 3.11: each command creates the virtual environment it needs
(``.venv``, plus ``.venv-sa14`` / ``.venv-sa20`` for the SQLAlchemy matrix), installs
the project into it, and re-installs only when ``pyproject.toml`` changes.

``test`` runs the whole suite on SQLAlchemy 2.1, then the core explain() tests on
SQLAlchemy 1.4 and 2.0. Database-server tests need the URLs printed by
``tests/servers/up.sh``; without them they skip with the reason (``.ci/run`` starts the
servers and sets ``SA_EXPLAIN_REQUIRE_SERVERS=1``, which turns those skips into failures).
Extra arguments after ``test`` go to pytest for the main run (``python3 dev.py test -k sentry``);
``--no-matrix`` skips the SQLAlchemy 1.4 / 2.0 runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAIN_VENV = ROOT / ".venv"
MATRIX = {
    "1.4": ("SQLAlchemy==1.4.54", ROOT / ".venv-sa14"),
    "2.0": ("SQLAlchemy==2.0.58", ROOT / ".venv-sa20"),
}
MATRIX_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "aiosqlite>=0.20", "greenlet>=3"]
MATRIX_TESTS = ["tests/test_explain_sites.py", "tests/test_explain_async.py", "tests/test_tracking.py"]


def say(msg: str) -> None:
    print(f"[dev.py] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> int:
    say(" ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT, **kw)  # type: ignore[arg-type]


def python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(env: Path, requirements: list[str], stamp_extra: str = "") -> Path:
    """Create ``env`` and install ``requirements`` unless the stamp says it is current."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"sa-explain needs Python >= 3.11 (this is {sys.version.split()[0]})")
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + "\n".join(requirements).encode() + stamp_extra.encode()
    ).hexdigest()
    stamp = env / ".sa-explain-stamp"
    py = python_of(env)
    if py.exists() and stamp.exists() and stamp.read_text() == digest:
        return py
    if not py.exists():
        say(f"creating {env.name}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
    quiet = ["-q"] if not os.environ.get("CI") else []
    if run([str(py), "-m", "pip", "install", *quiet, "--upgrade", "pip"]) != 0:
        sys.exit("pip upgrade failed")
    if run([str(py), "-m", "pip", "install", *quiet, *requirements]) != 0:
        sys.exit(f"installing {requirements} into {env.name} failed")
    stamp.write_text(digest)
    return py


def optional_driver(py: Path) -> None:
    """mysqlclient needs a C toolchain and libmariadb-dev; without them, its tests skip."""
    probe = subprocess.call([str(py), "-c", "import MySQLdb"], cwd=ROOT, stderr=subprocess.DEVNULL)
    if probe == 0:
        return
    code = run([str(py), "-m", "pip", "install", "-q", "-e", ".[mysqlclient]"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if code != 0:
        say("mysqlclient could not be built here (needs libmariadb-dev and pkg-config): its tests will skip")


def cmd_demo(args: list[str]) -> int:
    py = ensure_venv(MAIN_VENV, ["-e", ".[demo]"])
    return run([str(py), "-m", "sa_explain", "demo", *args])


def cmd_test(args: list[str], matrix: bool = True) -> int:
    py = ensure_venv(MAIN_VENV, ["-e", ".[dev]"])
    optional_driver(py)
    if not os.environ.get("PG_PRIMARY_URL"):
        say("server URLs are not set: database-server tests will SKIP (start them with "
            "`eval \"$(bash tests/servers/up.sh)\"`, as .ci/run does)")
    failed = []
    code = run([str(py), "-m", "pytest", *args])
    if code != 0:
        failed.append(f"main suite (SQLAlchemy 2.1): pytest exit {code}")
    if matrix:
        for version, (pin, env) in MATRIX.items():
            mpy = ensure_venv(env, [pin, *MATRIX_TOOLS])
            code = run([str(mpy), "-m", "pytest", "-q", *MATRIX_TESTS])
            if code != 0:
                failed.append(f"SQLAlchemy {version} matrix: pytest exit {code}")
    if failed:
        say("FAILED: " + "; ".join(failed))
        return 1
    say("all test runs passed")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        print("usage: python3 dev.py demo | python3 dev.py test [pytest args]")
        return 2
    if argv[0] == "demo":
        return cmd_demo(argv[1:])
    rest = [a for a in argv[1:] if a != "--no-matrix"]
    return cmd_test(rest, matrix="--no-matrix" not in argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
