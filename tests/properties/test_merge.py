"""Any template text either passes the save-time check or is refused with a line number, and
any contact data then renders (the sandbox's refusals: tests/security/test_template_sandbox.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from outreach.content import compile as compiler
from outreach.content import merge
from outreach.content.segments import count_segments
from outreach.exceptions import ValidationError

LINE = re.compile(r"^line \d+: \S")
# Pieces that make template syntax likely, so most examples are near-valid templates.
PIECES = ["{{", "}}", "{%", "%}", "{#", "#}", " ", "\n", "first_name", "last_name", "email",
          "fields", ".", "[", "]", "'", '"', "|", "default(", "upper", "title", "trim", ")",
          "(", "~", "+", "*", "**", "%", "_", "__class__", "format", "x", "1", "9", "-",
          "if", "for", "<a href=\"https://example.org/\">", "</a>", "</body>", "%%", "é", "€"]
TEMPLATE = st.one_of(st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
                     st.text(max_size=200))
SCALAR = st.one_of(st.none(), st.text(max_size=50), st.integers(), st.floats(),
                   st.booleans())
JSONISH = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8)
CONTEXT = st.fixed_dictionaries({
    "first_name": st.text(max_size=40), "last_name": st.text(max_size=40),
    "email": st.text(max_size=40), "phone": st.text(max_size=20),
    "postal_code": st.text(max_size=10), "timezone": st.text(max_size=20),
    "fields": st.dictionaries(st.text(max_size=10), JSONISH, max_size=4)})


def checked(source: str) -> bool:
    """True when the template passes; a refusal must name the line."""
    try:
        merge.check(source, "body")
    except ValidationError as exc:
        assert set(exc.fields) == {"body"}
        assert LINE.match(exc.fields["body"]), exc.fields
        return False
    return True


@given(TEMPLATE, CONTEXT)
@example("{{ first_name | default('friend') }}", {"first_name": "", "fields": {}})
@example("{{ fields.shoe_size * 1000000 }}", {"fields": {"shoe_size": "x" * 50}})
@example("{{ ((9**64)**64)**64 }}", {})
@example("{{" + "(" * 2000 + "1" + ")" * 2000 + "}}", {})
@example("{{ '}}' }}", {})
@example("{{ first_name" + " | upper" * 300 + " }}", {})  # Jinja's compiler is slow on these
@example("{{ " + "-" * 400 + "1 }}", {})  # Python's compiler refuses this nesting
def test_any_template_is_refused_with_a_line_or_renders_for_any_contact(
        source: str, context: dict[str, Any]) -> None:
    """check() never raises anything but a ValidationError; a checked template always renders."""
    if not checked(source):
        return
    text = merge.render_text(source, context)
    assert isinstance(text, str)
    assert len(text) <= len(source) + 2_000_000
    count_segments(text)
    version = SimpleNamespace(subject=source, html=source, text=source, body=source,
                              append_stop=True)
    email = compiler.compile_email(version, "https://example.org")  # type: ignore[arg-type]
    subs = merge.substitutions(email.merges, context, "tok", "https://example.org/u/tok")
    assert all(isinstance(value, str) for value in subs.values())
    compiler.compile_sms(version)  # type: ignore[arg-type]
