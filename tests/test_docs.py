"""The docs and the code name the same causes and hints, and the README's commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from sa_explain import CAUSES
from sa_explain.hints import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


def test_every_hint_has_an_anchor_in_docs() -> None:
    text = (ROOT / "docs" / "hints.md").read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    for hint in CATALOGUE.values():
        anchor = hint.docs.rsplit("#", 1)[1]
        assert anchor in anchors, f"docs/hints.md has no anchor for {hint.id}"
        assert f"`{hint.id}`" in text


def test_every_cause_has_a_page() -> None:
    for cause in CAUSES:
        assert (ROOT / "docs" / "causes" / f"{cause}.md").exists(), cause


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 dev.py demo" in readme and "python3 dev.py test" in readme
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()
