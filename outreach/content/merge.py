"""Merge fields: a sandboxed Jinja expression language, checked at save time, fast at send time.

A template may contain `{{ expression }}` merges (with filters, e.g. `{{ first_name |
default("friend") }}`); statements (`{% ... %}`) are refused. Each distinct expression is
compiled once and replaced by a substitution tag, so a blast's body is compiled once and each
recipient only evaluates the few expressions it contains.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach.exceptions import ValidationError

CONTACT_VARIABLES = ("first_name", "last_name", "email", "phone", "postal_code", "timezone",
                     "fields")
LINK_VARIABLES = ("unsubscribe_url",)
KNOWN = set(CONTACT_VARIABLES) | set(LINK_VARIABLES)
MERGE = re.compile(r"\{\{(.*?)\}\}", re.S)
TOKEN_TAG = "%%t%%"


def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox every merge is evaluated in: no attribute access to internals, no mutation."""
    return _ENV


# Missing custom fields render as nothing (and `default(...)` applies) instead of failing a send.
_ENV = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True,
                                     undefined=ChainableUndefined)


def check(source: str, part: str) -> None:
    """Refuse a syntax error, a statement or an unknown field, naming the part and the line."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationError("Template error",
                              {part: f"line {exc.lineno}: {exc.message}"}) from None
    for node in tree.find_all((nodes.If, nodes.For, nodes.Macro, nodes.Assign, nodes.Block,
                               nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends,
                               nodes.CallBlock, nodes.FilterBlock, nodes.With)):
        raise ValidationError("Template error", {part: (
            f"line {node.lineno}: blocks like {{% ... %}} are not supported; use merges such "
            f"as {{{{ first_name | default('friend') }}}}")})
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "")
        if isinstance(attr, str) and attr.startswith("_"):
            raise ValidationError("Template error", {
                part: f"line {node.lineno}: names starting with _ are not allowed"})
    unknown = sorted(meta.find_undeclared_variables(tree) - KNOWN)
    if unknown:
        line = next((i + 1 for i, text in enumerate(source.splitlines()) if unknown[0] in text), 1)
        raise ValidationError("Template error", {part: (
            f"line {line}: unknown field {unknown[0]!r}; known fields are "
            f"{', '.join(sorted(KNOWN))} (custom fields as fields.name)")})


@dataclass(frozen=True)
class Merges:
    """The distinct merge expressions of a set of texts, each with its compiled evaluator."""

    sources: tuple[str, ...]

    def evaluate(self, context: dict[str, Any]) -> list[str]:
        """Each expression's value for one recipient, as text ('' for nothing)."""
        values = []
        for source in self.sources:
            try:
                value = _compiled(source)(**context)
            except (TemplateError, TypeError, ValueError, ArithmeticError):
                value = None  # one contact's odd data must not stop a blast: merge nothing
            values.append("" if value is None else str(value))
        return values


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def extract(*texts: str) -> tuple[Merges, list[str]]:
    """Replace every merge by tags: `%%mN%%` for the raw value, `%%hN%%` for HTML-escaped."""
    order: dict[str, int] = {}
    out = []
    for index, text in enumerate(texts):
        escape = index == 1  # by convention the second text is the HTML part

        def tag(match: re.Match[str], escape: bool = escape) -> str:
            source = " ".join(match.group(1).split())
            if source == "unsubscribe_url":
                return "%%u%%"
            n = order.setdefault(source, len(order))
            return f"%%h{n}%%" if escape else f"%%m{n}%%"

        out.append(MERGE.sub(tag, text))
    return Merges(tuple(order)), out


def substitutions(merges: Merges, context: dict[str, Any], token: str,
                  unsubscribe_url: str) -> dict[str, str]:
    """The substitution map of one recipient."""
    subs = {TOKEN_TAG: token, "%%u%%": unsubscribe_url}
    for n, value in enumerate(merges.evaluate(context)):
        subs[f"%%m{n}%%"] = value
        subs[f"%%h{n}%%"] = html.escape(value)
    return subs


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render one text with merges directly (SMS bodies, previews)."""
    merges, (compiled,) = extract(source)
    values = merges.evaluate(context)
    for n, value in enumerate(values):
        compiled = compiled.replace(f"%%m{n}%%", value)
    return compiled.replace("%%u%%", context.get("unsubscribe_url", ""))
