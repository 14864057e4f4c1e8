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
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

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


class _MergeSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing arithmetic that would build huge values ('a' * 10**10)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse a power, repetition or padding whose result would not fit in a message."""
        if operator == "**" and isinstance(right, int) and (
                abs(right) > 64 or (isinstance(left, int) and abs(left).bit_length() > 64)):
            raise SecurityError("exponent too large")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        if operator == "*" and isinstance(left, str | list | tuple) and isinstance(right, int) \
                and len(left) * right > MAX_VALUE_CHARS:
            raise SecurityError("value too large")
        if operator == "*" and isinstance(right, str | list | tuple) and isinstance(left, int) \
                and len(right) * left > MAX_VALUE_CHARS:
            raise SecurityError("value too large")
        return super().call_binop(context, operator, left, right)


MAX_VALUE_CHARS = 100_000
_HUGE_WIDTH = re.compile(r"%[^a-zA-Z%]*\d{5,}")


def _check_format(text: str) -> None:
    """Refuse printf-style widths that pad a value to megabytes ("%0999999999d")."""
    if _HUGE_WIDTH.search(text):
        raise SecurityError("format width too large")


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return str(value) % (kwargs or args)


# Missing custom fields render as nothing (and `default(...)` applies) instead of failing a send.
_ENV = _MergeSandbox(autoescape=False, keep_trailing_newline=True, undefined=ChainableUndefined)
# No globals (range, lipsum, cycler, ...): a merge sees contact fields only, and a name that is
# not one is reported as an unknown field at save time instead of rendering a function's repr.
_ENV.globals.clear()
# Filters that pad or repeat to a width given in the template ("x"|center(10**9)) are left out.
for _name in ("center", "indent", "batch", "slice", "random", "pprint"):
    del _ENV.filters[_name]
_ENV.filters["format"] = _format_filter
# str.format and format_map reach attributes through format strings ("{0.__class__}").
UNSAFE_METHODS = frozenset({"format", "format_map"})


def check(source: str, part: str) -> None:
    """Refuse a syntax error, a statement or an unknown field, naming the part and the line."""
    try:
        tree = _ENV.parse(source)
        _check_size(tree, part)
        undeclared = meta.find_undeclared_variables(tree)  # also refuses unknown filters
        # Jinja binds `self` to the template itself; here it is just another unknown name.
        undeclared |= {n.name for n in tree.find_all(nodes.Name) if n.name == "self"}
    except TemplateSyntaxError as exc:
        raise ValidationError("Template error",
                              {part: f"line {exc.lineno}: {exc.message}"}) from None
    except RecursionError:
        raise ValidationError("Template error", {part: "line 1: expressions nested too deeply"}
                              ) from None
    for match in MERGE.finditer(source):  # each merge as a send will compile it
        line = source.count("\n", 0, match.start()) + 1
        try:
            _compiled(" ".join(match.group(1).split()))
        except TemplateSyntaxError as exc:
            raise ValidationError("Template error", {part: f"line {line}: {exc.message}"}
                                  ) from None
        except (RecursionError, SyntaxError, MemoryError):  # Python's compiler gives up
            raise ValidationError("Template error", {
                part: f"line {line}: expression nested too deeply"}) from None
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
        if isinstance(attr, str) and attr in UNSAFE_METHODS:
            raise ValidationError("Template error", {
                part: f"line {node.lineno}: .{attr}() is not allowed; use the format filter"})
    unknown = sorted(undeclared - KNOWN)
    if unknown:
        line = next((i + 1 for i, text in enumerate(source.splitlines()) if unknown[0] in text), 1)
        raise ValidationError("Template error", {part: (
            f"line {line}: unknown field {unknown[0]!r}; known fields are "
            f"{', '.join(sorted(KNOWN))} (custom fields as fields.name)")})


MAX_FILTERS_PER_MERGE = 20


def _check_size(tree: nodes.Template, part: str) -> None:
    """Refuse merges with so many filters that Jinja's compiler would take minutes on them."""
    for output in tree.find_all(nodes.Output):
        for expression in output.nodes:
            if isinstance(expression, nodes.TemplateData):
                continue
            count = sum(1 for _ in expression.find_all((nodes.Filter, nodes.Test)))
            if count > MAX_FILTERS_PER_MERGE:
                raise ValidationError("Template error", {part: (
                    f"line {expression.lineno}: more than {MAX_FILTERS_PER_MERGE} filters in "
                    "one merge")})


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
