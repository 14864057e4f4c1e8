"""The merge-field sandbox: no reaching Python internals, no mutation, no huge values.

Refusals come at save time as a clean template error naming the line; what only shows at send
time (a filter on a value) merges nothing instead of leaking a repr or exhausting a worker.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from outreach.content import merge
from tests.properties.test_merge import CONTEXT, checked

INTERNALS = [
    "{{ contact.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ first_name.__class__ }}",
    "{{ fields.__init__.__globals__ }}", "{{ fields['__class__'] }}",
    "{{ '{0.__class__}'.format(first_name) }}", "{{ '{0.__class__.__mro__}'.format(fields) }}",
    "{{ first_name.format_map(fields) }}", "{{ lipsum.__globals__ }}", "{{ lipsum }}",
    "{{ cycler }}", "{{ range(10) }}", "{{ namespace() }}", "{{ self }}", "{{ config }}",
    "{{ request }}", "{{ first_name | nosuchfilter }}", "{{ 'x' | center(1000000000) }}",
]


@given(st.sampled_from(INTERNALS), CONTEXT)
def test_the_sandbox_refuses_internals_with_a_clean_error(source: str,
                                                          context: dict[str, Any]) -> None:
    """Reaching for internals is refused at save time, with the line, never rendered."""
    assert not checked(source), source


@given(st.sampled_from([
    "{{ fields | attr('__class__') }}", "{{ fields.update({'a': 1}) }}", "{{ 'a' * 10**10 }}",
    "{{ [1] * 10**10 }}", "{{ 9 ** (9 ** 9) }}", "{{ '%0999999999d' % 1 }}",
    "{{ '%0999999999d' | format(1) }}", "{{ fields.pop('a') }}"]), CONTEXT)
def test_what_passes_the_check_cannot_leak_mutate_or_exhaust(source: str,
                                                              context: dict[str, Any]) -> None:
    """Runtime refusals merge nothing: no class names, no mutation, no gigabyte strings."""
    context = {**context, "fields": {"a": "kept"}}
    if checked(source):
        text = merge.render_text(source, context)
        assert "class" not in text and len(text) < 1000
    assert context["fields"] == {"a": "kept"}


def test_the_api_answers_a_sandbox_escape_with_a_422_naming_the_line(app) -> None:
    """Saving such a template through the API is a clean 422, with the part and the line."""
    from tests.fixtures.app import make_token

    token = make_token(app, "organizer")
    client = app.test_client()
    for body in ("Hi {{ ''.__class__.__mro__ }}", "Hi\n{{ '{0.__class__}'.format(first_name) }}",
                 "Hi {{ first_name | nosuchfilter }}", "{{" + "(" * 500 + "1" + ")" * 500 + "}}"):
        response = client.post("/api/v1/templates", json={
            "name": "Sneaky", "channel": "sms", "body": body},
            headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 422, (body, response.status_code)
        details = response.get_json()["error"]["details"]
        assert details["body"].startswith("line "), details
