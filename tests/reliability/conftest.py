"""Fixtures of the fault tests: private servers they may restart (tests/reliability/servers.py)."""

from tests.reliability.servers import private_postgres, private_redis  # noqa: F401
