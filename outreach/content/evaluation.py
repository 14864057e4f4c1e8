"""Evaluating a blast's merges for many recipients: the same values as `merge.substitutions`,
without a Jinja context per expression and recipient.

A bare field (`{{ first_name }}`) is read from the recipient's merge context directly. Any other
expression is evaluated by Jinja's sandbox, once per distinct value of the fields it reads
(first names, cities and wards repeat across a list), unless it may not give the same answer
twice (`random`, `lipsum`, `cycler`...: the sandbox offers none of them today, the check is
there should it ever do).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Hashable
from typing import Any

from jinja2 import TemplateError, meta, nodes

from outreach.content import merge

MEMO_LIMIT = 100_000  # distinct inputs remembered per expression before starting afresh
IMPURE_FILTERS = frozenset({"random", "shuffle"})
IMPURE_CALLS = frozenset({"lipsum", "cycler", "joiner", "range", "namespace"})


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for a merge context value; raises TypeError when there is none."""
    if type(value) is str:
        return value
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__list__", *(_frozen(v) for v in value))
    hash(value)
    return (type(value).__name__, value)


def _key_function(tree: nodes.Template, inputs: tuple[str, ...]
                  ) -> Callable[[dict[str, Any]], Hashable]:
    """What an expression's value depends on: the fields it reads, or for `fields.city` only
    that custom field (so a member number elsewhere in `fields` does not defeat the memo)."""
    reads: list[tuple[str, str | None]] = []
    for name in inputs:
        uses = [n for n in tree.find_all(nodes.Name) if n.name == name]
        keys = [n.attr for n in tree.find_all(nodes.Getattr)
                if isinstance(n.node, nodes.Name) and n.node.name == name]
        keys += [n.arg.value for n in tree.find_all(nodes.Getitem)
                 if isinstance(n.node, nodes.Name) and n.node.name == name
                 and isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str)]
        # (`fields.items` is the dict's method, not a custom field: such names key on it all.)
        if name == "fields" and uses and len(keys) == len(uses) and not any(
                hasattr(dict, key) for key in keys):
            reads += [(name, key) for key in sorted(set(keys))]
        else:
            reads.append((name, None))

    def key(context: dict[str, Any]) -> Hashable:
        out = []
        for name, item in reads:
            value = context.get(name)
            if item is not None:
                # A missing key and a present one holding None render differently.
                value = (item in value, _frozen(value.get(item))) if isinstance(value, dict) \
                    else ("not a dict", _frozen(value))
            else:
                value = _frozen(value)
            out.append(value)
        return tuple(out)

    return key


class _Expression:
    """One merge expression with the cheapest correct way to evaluate it."""

    def __init__(self, source: str) -> None:
        tree = merge.environment().parse(f"{{{{ {source} }}}}")
        body = tree.body[0].nodes[0] if tree.body and isinstance(tree.body[0], nodes.Output) \
            and len(tree.body[0].nodes) == 1 else None
        self.source = source
        self.name = body.name if isinstance(body, nodes.Name) and body.ctx == "load" else None
        try:
            self.inputs = tuple(sorted(meta.find_undeclared_variables(tree)))
        except TemplateError:  # e.g. an unknown filter: Jinja fails it at every call anyway
            self.inputs = ()
        pure = bool(self.inputs) and not any(
            f.name in IMPURE_FILTERS for f in tree.find_all(nodes.Filter)) and not any(
            isinstance(c.node, nodes.Name) and c.node.name in IMPURE_CALLS
            for c in tree.find_all(nodes.Call))
        self.memo: dict[Hashable, tuple[str, str]] | None = {} if pure else None
        self.escaped: dict[str, tuple[str, str]] = {}  # a bare field's values, HTML-escaped
        self.key = _key_function(tree, self.inputs)
        self._evaluate: Callable[..., Any] = merge._compiled(source)

    def values(self, context: dict[str, Any]) -> tuple[str, str]:
        """(raw, HTML-escaped) text of the expression for one recipient."""
        if self.name is not None and self.name in context:
            value = context[self.name]
            if type(value) is str:  # first names and the like repeat: escaped once each
                found = self.escaped.get(value)
                if found is None:
                    if len(self.escaped) >= MEMO_LIMIT:
                        self.escaped.clear()
                    found = self.escaped[value] = (value, html.escape(value))
                return found
            text = "" if value is None else str(value)
            return text, html.escape(text)
        if self.memo is None:
            return self._pair(context)
        try:
            key = self.key(context)
        except TypeError:
            return self._pair(context)
        found = self.memo.get(key)
        if found is None:
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            found = self.memo[key] = self._pair(context)
        return found

    def _pair(self, context: dict[str, Any]) -> tuple[str, str]:
        try:
            value = self._evaluate(**context)
        except (TemplateError, TypeError, ValueError, ArithmeticError):
            value = None  # as merge.Merges.evaluate: one contact's odd data merges nothing
        text = "" if value is None else str(value)
        return text, html.escape(text)


class MergeEvaluator:
    """Substitution maps of many recipients for one set of merges (build once per batch or
    per process; it only remembers values, never recipients)."""

    def __init__(self, merges: merge.Merges) -> None:
        self.expressions = [_Expression(source) for source in merges.sources]
        self.tags = [(f"%%m{n}%%", f"%%h{n}%%") for n in range(len(self.expressions))]

    def substitutions(self, context: dict[str, Any], token: str,
                      unsubscribe_url: str) -> dict[str, str]:
        """What `merge.substitutions` returns for this recipient."""
        subs = {merge.TOKEN_TAG: token, "%%u%%": unsubscribe_url}
        for (raw_tag, html_tag), expression in zip(self.tags, self.expressions, strict=True):
            subs[raw_tag], subs[html_tag] = expression.values(context)
        return subs
