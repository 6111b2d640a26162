#!/usr/bin/env python3
"""What explain() recovers at each raise site, per SQLAlchemy version (docs/raise-sites.md).

Runs tests/test_explain_sites.py under each venv that ``dev.py test`` builds, with
SA_EXPLAIN_SITE_REPORT set so every scenario records its explanation, then prints a
Markdown table: one row per scenario, one column group per version.

    python3 scripts/raise_sites_report.py > /tmp/sites.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = {"2.1": ROOT / ".venv", "2.0": ROOT / ".venv-sa20", "1.4": ROOT / ".venv-sa14"}
FIELDS = ("site", "identity", "table", "rows", "version", "bind", "primary_row", "cause", "source")


def summarize(d: dict) -> str:
    got = []
    if d.get("identity") is not None:
        got.append(f"identity {d['identity']}")
    elif d.get("identities"):
        got.append(f"identities {d['identities']}")
    if d.get("table"):
        got.append(f"table {d['table']}")
    if d.get("rows") and d["rows"].get("expected") is not None:
        got.append(f"rows {d['rows']['expected']}/{d['rows']['matched']}")
    if d.get("version"):
        v = d["version"]
        got.append(f"version {v.get('expected')}→{v.get('new')} (db {v.get('actual')})")
    if d.get("bind"):
        got.append(f"bind {d['bind'].get('name')}/{d['bind'].get('role')}")
    got.append(f"primary_row {d.get('primary_row')}")
    got.append(f"**{d.get('cause')}** {d.get('confidence')}")
    return f"`{d.get('site')}` ({d.get('source')}): " + ", ".join(got)


def main() -> int:
    rows: dict[str, dict[str, list[str]]] = {}
    for version, venv in VENVS.items():
        py = venv / "bin" / "python"
        if not py.exists():
            print(f"(no {venv.name}: run python3 dev.py test first)", file=sys.stderr)
            continue
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as fh:
            path = fh.name
        env = {**os.environ, "SA_EXPLAIN_SITE_REPORT": path}
        subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:randomly", "tests/test_explain_sites.py"],
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        for line in Path(path).read_text().splitlines():
            rec = json.loads(line)
            rows.setdefault(rec["scenario"], {}).setdefault(version, []).append(summarize(rec["explanation"]))
        os.unlink(path)
    versions = [v for v in VENVS if any(v in r for r in rows.values())]
    print("| scenario | " + " | ".join(f"SQLAlchemy {v}" for v in versions) + " |")
    print("|---|" + "---|" * len(versions))
    for scenario, per in rows.items():
        cells = ["<br>".join(per.get(v, ["—"])) for v in versions]
        print(f"| {scenario} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
