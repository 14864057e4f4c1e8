"""Hypothesis profiles: quick under `make test`, thorough under CI (or HYPOTHESIS_PROFILE=ci)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.fixtures.services import in_ci

# Database-backed properties build rows per example: no deadline (the machine is shared and
# noisy), and the fixtures' app is reused across examples on purpose (each example cleans up).
_COMMON = {"deadline": None,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("outreach", max_examples=60, **_COMMON)
settings.register_profile("ci", max_examples=400, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "outreach"))

