"""Shared fixtures: a clean sa-explain configuration for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sa_explain.config as config


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    config.reset()
    yield
    config.reset()
