"""Fixtures live in tests/fixtures, one module per concern."""

import os

os.environ.setdefault("OUTREACH_NO_DOTENV", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.app"]
# tests.fixtures.contacts holds plain helpers (import them); it defines no fixtures.
