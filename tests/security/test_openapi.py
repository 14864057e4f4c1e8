"""The OpenAPI document is valid, covers every API route, and the API keeps to it.

Schemathesis generates requests from the document for every operation, with a token of each
role: no answer is a 500, every status code and body is one the document declares.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.app import make_token
from tests.properties import scaled

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance]
ROLES = ("viewer", "organizer", "admin")


def test_the_document_is_valid_openapi_and_covers_every_route(app: Flask) -> None:
    """openapi-spec-validator accepts it; documented operations are exactly the routes."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(document)
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.openapi":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
            routed |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def _run_operation(app: Flask, operation: schemathesis.APIOperation, token: str) -> None:
    @settings(max_examples=scaled(3), deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    run()


@pytest.mark.parametrize("role", ROLES)
def test_the_api_keeps_to_its_document_for_each_role(app: Flask, role: str) -> None:
    """Generated requests for every operation: no 500, only documented codes and shapes."""
    token = make_token(app, role)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _run_operation(app, operation, token)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations > 50
    assert not failures, "\n\n".join(failures)
