"""What a template would do wrong to every message, found before a campaign is stored.

- its syntax (an unknown filter included);
- what the sandbox refuses: a name starting with `_` (`''.__class__`, `x['_y']`,
  `x|attr('__y')`), other internals (`mro`, `gi_frame`, …), a call that would modify a value
  (`items.append(…)`), and extending, including or importing templates (there are none);
- a variable that is not in the context, and `user.X` / `user['X']` (or `campaign.X`) for an
  X that no user has. A read the template guards, `x | default(…)`, `x is defined`,
  `user.get('x')` (anywhere in the template), may be unknown: the author said it may be
  missing.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from jinja2 import meta, nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    modifies_known_mutable,
)

from drumbeat.channels.render import GLOBALS, parse, syntax_problems
from drumbeat.errors import Problem

Fields = Mapping[str, Collection[str] | None]  # variable → its known keys (None: not checked)
MAX_LISTED = 30
_INTERNAL = frozenset(
    {"mro"}
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
_GUARDS = (("default", "d"), ("defined", "undefined"))  # filters, tests
_DEFAULT = "| default('…')"
_LOOKUPS = frozenset({"get", "items", "keys", "values"})  # methods of a dict that only read


def unknown(
    what: str, name: str, known: Iterable[str], context: str = "", otherwise: str = ""
) -> str:
    """`unknown channel 'pagr' (known: email, …); did you mean 'page'?`, or `; {otherwise}`
    when no known name is close."""
    names = sorted(known)
    listed = ", ".join(names[:MAX_LISTED]) + (", …" if len(names) > MAX_LISTED else "")
    text = f"unknown {what} {name!r}{context} (known: {listed or 'none'})"
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"{text}; did you mean {close[0]!r}?"
    return f"{text}; {otherwise}" if otherwise else text


@dataclass(frozen=True, slots=True)
class Read:
    """`user.nmae` or `user['nmae']`: a key read from a context variable."""

    root: str
    key: str
    shown: str
    line: int


def template_problems(source: str, where: str, fields: Fields) -> list[Problem]:
    """Every problem of one template, each once, at `where` (with its line when the
    template has several)."""
    if "{" not in source:
        return []
    if problems := syntax_problems(source, where):
        return problems
    tree = parse(source)
    several = "\n" in source.strip()
    found: dict[str, Problem] = {}
    for line, message in [*_unsafe(tree), *_unknown(tree, fields)]:
        found.setdefault(message, Problem(f"{where}: line {line}" if several else where, message))
    return list(found.values())


def _refused(name: str) -> bool:
    return name.startswith("_") or name in _INTERNAL


def _modifies(method: str) -> bool:
    return any(modifies_known_mutable(kind(), method) for kind in (list, dict, set))


def _const(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _unsafe(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        yield node.lineno, "a message template cannot extend, include or import a template"
    names: list[tuple[int, str | None]]
    names = [(node.lineno, node.attr) for node in tree.find_all(nodes.Getattr)]
    names += [(node.lineno, _const(node.arg)) for node in tree.find_all(nodes.Getitem)]
    names += [
        (node.lineno, _const(node.args[0]))
        for node in tree.find_all(nodes.Filter)
        if node.name == "attr" and node.args
    ]
    for line, name in names:
        if name is not None and _refused(name):
            yield line, f"unsafe: the sandbox refuses {name!r}"
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Getattr) and _modifies(call.node.attr):
            method = call.node.attr
            yield call.lineno, f"unsafe: {method}() modifies a value; the sandbox refuses it"


def _read(node: nodes.Node | None) -> Read | None:
    if not isinstance(node, nodes.Getattr | nodes.Getitem) or not isinstance(node.node, nodes.Name):
        return None
    root = node.node.name
    if isinstance(node, nodes.Getattr):
        return Read(root, node.attr, f"{root}.{node.attr}", node.lineno)
    key = _const(node.arg)
    return None if key is None else Read(root, key, f"{root}[{key!r}]", node.lineno)


def _guarded(tree: nodes.Template) -> set[tuple[str, str | None]]:
    """(variable, key) pairs the template reads under a guard; key None: the variable itself."""
    filters, tests = _GUARDS
    under = [node.node for node in tree.find_all(nodes.Filter) if node.name in filters]
    under += [node.node for node in tree.find_all(nodes.Test) if node.name in tests]
    guarded: set[tuple[str, str | None]] = set()
    for node in under:
        if isinstance(node, nodes.Name):
            guarded.add((node.name, None))
        elif (read := _read(node)) is not None:
            guarded.add((read.root, read.key))
    for call in tree.find_all(nodes.Call):  # user.get('x')
        read = _read(call.node)
        key = _const(call.args[0]) if call.args else None
        if read is not None and read.key == "get" and key is not None:
            guarded.add((read.root, key))
    return guarded


def _unknown(tree: nodes.Template, fields: Fields) -> Iterator[tuple[int, str]]:
    free = meta.find_undeclared_variables(tree) - GLOBALS
    guarded = _guarded(tree)
    for name in sorted(free - set(fields)):
        if (name, None) not in guarded:
            line = next(n.lineno for n in tree.find_all(nodes.Name) if n.name == name)
            yield line, unknown("variable", name, fields)
    callees = {id(call.node) for call in tree.find_all(nodes.Call)}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        read = _read(node)
        known = fields.get(read.root) if read is not None else None
        if read is None or known is None or read.root not in free or read.key in known:
            continue
        if (read.root, read.key) in guarded or _refused(read.key):
            continue
        if id(node) in callees and read.key in _LOOKUPS:
            continue
        shown = f" in {{{{ {read.shown} }}}}"
        if read.root == "user":
            hint = f"declare it (drumbeat attributes declare) or give it a default: {_DEFAULT}"
            yield read.line, unknown("attribute", read.key, known, shown, hint)
        else:
            yield read.line, unknown(f"{read.root} field", read.key, known, shown)
