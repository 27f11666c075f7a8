"""Render a Helm chart offline, without Helm: a small interpreter of Go's text/template with the
Helm and sprig functions CPTR's chart uses, for tests.

It is strict where Helm is lenient, so a test fails early rather than passing on an empty value:
printing a missing value, an unknown function, an unknown variable, comparing an int with a float
(Go refuses that too) and printf verbs that do not fit their argument are errors. Numbers from
values.yaml are float64, as in Helm, and print the way Go prints them (1000000 -> 1e+06). When the
real Helm engine is installed (``pip install helm-python-sdk``), ``tests/test_deploy.py`` checks
that both render the same objects.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    """A template failed to parse or render (the message names the template)."""


class FailCalled(TemplateError):
    """The template called ``fail`` (or ``required`` found nothing)."""


# ------------------------------------------------------------------------------------------- lexing
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<punct>[()|,])
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot parse {text[pos:]!r} in {{{{ {text} }}}}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _split(template: str) -> list[tuple[str, str]]:
    """[('text', s) | ('action', s)] with the {{- and -}} trims applied."""
    parts: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            parts.append(("text", text))
        body = m.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            parts.append(("action", body))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = template[pos:]
    if trim_next:
        text = text.lstrip()
    if text:
        parts.append(("text", text))
    return parts


# ------------------------------------------------------------------------------------------- parsing
@dataclass
class Node:
    kind: str  # text | action | if | range | with | define
    value: Any = None  # text, or the pipeline tokens
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _parse(parts: list[tuple[str, str]], where: str, defines: dict[str, list[Node]]) -> list[Node]:
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list[Node], str]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(parts):
            kind, body = parts[pos]
            pos += 1
            if kind == "text":
                nodes.append(Node("text", body))
                continue
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word) :].strip()
            if word in ("end", "else"):
                if word not in stop:
                    raise TemplateError(f"{where}: unexpected {{{{ {body} }}}}")
                return nodes, body
            if word in ("if", "range", "with"):
                node = current = Node(word, _tokens(rest, where))
                current.body, ended = block(("end", "else"))
                while ended != "end":
                    tail = ended[4:].strip()  # after "else"
                    if tail.split(None, 1)[0:1] in (["if"], ["with"]):  # else if / else with: a nested block sharing our end
                        sub_word, sub_rest = tail.split(None, 1)
                        nested = Node(sub_word, _tokens(sub_rest, where))
                        current.orelse = [nested]
                        current = nested
                        current.body, ended = block(("end", "else"))
                    else:
                        current.orelse, ended = block(("end",))
                nodes.append(node)
            elif word == "define":
                name = json.loads(rest)
                defines[name], _ = block(("end",))
            elif word == "template":
                nodes.append(Node("action", _tokens("include " + rest, where)))
            else:
                nodes.append(Node("action", _tokens(body, where)))
        if stop:
            raise TemplateError(f"{where}: missing {{{{ end }}}}")
        return nodes, ""

    nodes, _ = block(())
    return nodes


# ------------------------------------------------------------------------------------------- values
def _go_float(f: float) -> str:
    """fmt.Sprint(float64): the shortest digits; %e form when the exponent is < -4 or >= 6 (so 1000000 -> 1e+06)."""
    if f != f or f in (float("inf"), float("-inf")):
        raise TemplateError(f"printed {f}")
    if f == 0:
        return "0"
    d = Decimal(repr(f))
    sign, digit_tuple, exp = d.as_tuple()
    digits = "".join(map(str, digit_tuple))
    exp10 = len(digits) + exp - 1
    neg = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        digits = digits.rstrip("0") or "0"
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mant}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    text = format(abs(d), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return neg + text


def _map_leaves(x: Any, leaf: Callable[[Any], Any]) -> Any:
    """``x`` with ``leaf`` applied to every value that is not a dict or a list."""
    if isinstance(x, dict):
        return {k: _map_leaves(v, leaf) for k, v in x.items()}
    if isinstance(x, list):
        return [_map_leaves(v, leaf) for v in x]
    return leaf(x)


def _floats(x: Any) -> Any:
    """Numbers as Helm holds values: float64 (from YAML via JSON)."""
    return _map_leaves(x, lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v)


def _plain(x: Any) -> Any:
    """For toYaml: integral floats back to ints (encoding/json prints float64 1 as 1)."""
    return _map_leaves(x, lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)


def _to_str(x: Any, strict: bool = True) -> str:
    if x is None:
        if strict:
            raise TemplateError("printed a missing value (Helm would print nothing)")
        return "<nil>"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return _go_float(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, str):
        return x
    raise TemplateError(f"printed a {type(x).__name__} ({x!r}); use toYaml")


def _truthy(x: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    if x is None or isinstance(x, bool):
        return bool(x)
    if isinstance(x, (int, float)):
        return x != 0
    return len(x) > 0


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int"
    if isinstance(x, float):
        return "float"
    if isinstance(x, str):
        return "string"
    return type(x).__name__


def _cmp(a: Any, b: Any, op: str) -> bool:
    if _kind(a) != _kind(b):
        raise TemplateError(f"{op}: incompatible types for comparison ({_kind(a)} {a!r}, {_kind(b)} {b!r})")
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def _to_int(x: Any) -> int:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, (int, float)):
        return int(x)
    if isinstance(x, str):
        try:
            return int(float(x))
        except ValueError:
            return 0
    return 0


def _printf(fmt: str, *args: Any) -> str:
    args_iter = iter(args)

    def one(m: re.Match) -> str:
        verb = m.group(1)
        if verb == "%":
            return "%"
        try:
            a = next(args_iter)
        except StopIteration:
            raise TemplateError(f"printf {fmt!r}: missing argument for %{verb}") from None
        if verb == "d":
            if _kind(a) != "int":
                raise TemplateError(f"printf {fmt!r}: %d of a {_kind(a)} ({a!r}) prints %!d(...) in Go")
            return str(a)
        if verb in "sv":
            return _to_str(a)
        if verb == "q":
            return json.dumps(_to_str(a))
        raise TemplateError(f"printf verb %{verb} is not supported")

    return re.sub(r"%([%a-z])", one, fmt)


def _to_yaml(x: Any) -> str:
    if x is None:
        return "null"
    return yaml.safe_dump(_plain(x), default_flow_style=False, sort_keys=True, width=1 << 30).rstrip("\n")


def _indent(n: Any, s: str) -> str:
    pad = " " * _to_int(n)
    return pad + s.replace("\n", "\n" + pad)


# ------------------------------------------------------------------------------------------- evaluation
class Renderer:
    def __init__(self, defines: dict[str, list[Node]]):
        self.defines = defines
        self.funcs = {
            "quote": lambda *a: " ".join(json.dumps(_to_str(x)) for x in a if x is not None),
            "toYaml": _to_yaml,
            "nindent": lambda n, s: "\n" + _indent(n, s),
            "indent": _indent,
            "default": lambda d, *given: given[0] if given and _truthy(given[0]) else d,
            "trunc": lambda n, s: s[: _to_int(n)] if _to_int(n) >= 0 else s[_to_int(n) :],
            "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
            "contains": lambda sub, s: sub in s,
            "printf": _printf,
            "int": _to_int,
            "add": lambda *a: sum(_to_int(x) for x in a),
            "not": lambda x: not _truthy(x),
            "eq": lambda a, *b: any(_kind(a) == _kind(x) and a == x for x in b),
            "ne": lambda a, b: not (_kind(a) == _kind(b) and a == b),
            "lt": lambda a, b: _cmp(a, b, "lt"),
            "le": lambda a, b: _cmp(a, b, "le"),
            "gt": lambda a, b: _cmp(a, b, "gt"),
            "ge": lambda a, b: _cmp(a, b, "ge"),
            "fail": self._fail,
            "required": self._required,
        }

    @staticmethod
    def _fail(msg: str) -> str:
        raise FailCalled(msg)

    @staticmethod
    def _required(msg: str, value: Any) -> Any:
        if value is None or value == "":
            raise FailCalled(msg)
        return value

    def include(self, name: str, dot: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"include: no template {name!r}")
        return self.run(self.defines[name], dot, [{"$": dot}])

    # -- expressions
    def _field(self, obj: Any, path: list[str], what: str) -> Any:
        for key in path:
            if obj is None:
                raise TemplateError(f"nil pointer evaluating {what} (at .{key})")
            if not isinstance(obj, dict):
                raise TemplateError(f"can't evaluate field {key} in {type(obj).__name__} ({what})")
            obj = obj.get(key)
        return obj

    def _lookup(self, scopes: list[dict[str, Any]], name: str) -> Any:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise TemplateError(f"undefined variable {name}")

    def _operand(self, tok: tuple[str, str], dot: Any, scopes: list[dict[str, Any]]) -> Any:
        kind, text = tok
        if kind == "str":
            return json.loads(text)
        if kind == "raw":
            return text[1:-1]
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "field":
            return dot if text == "." else self._field(dot, text[1:].split("."), text)
        if kind == "var":
            name, *path = text.split(".")
            return self._field(self._lookup(scopes, name), path, text)
        if kind == "ident":
            if text in ("true", "false"):
                return text == "true"
            if text == "nil":
                return None
        raise TemplateError(f"unexpected {text!r}")

    def _command(self, toks: list[tuple[str, str]], dot: Any, scopes: list[dict[str, Any]], piped: tuple[Any, ...]) -> Any:
        args, i = [], 0
        while i < len(toks):
            kind, text = toks[i]
            if kind == "punct" and text == "(":
                depth, j = 1, i + 1
                while depth:
                    if j >= len(toks):
                        raise TemplateError("unbalanced parentheses")
                    depth += {"(": 1, ")": -1}.get(toks[j][1], 0) if toks[j][0] == "punct" else 0
                    j += 1
                args.append(("value", self.pipeline(toks[i + 1 : j - 1], dot, scopes)))
                i = j
            else:
                args.append(("tok", toks[i]))
                i += 1
        head = args[0]
        if head[0] == "tok" and head[1][0] == "ident" and head[1][1] not in ("true", "false", "nil"):
            name = head[1][1]
            values = [a[1] if a[0] == "value" else self._operand(a[1], dot, scopes) for a in args[1:]] + list(piped)
            if name == "include":
                return self.include(values[0], values[1] if len(values) > 1 else None)
            if name in ("and", "or"):
                for v in values:
                    if _truthy(v) != (name == "and"):
                        return v
                return values[-1]
            if name not in self.funcs:
                raise TemplateError(f'function "{name}" not defined')
            return self.funcs[name](*values)
        if len(args) > 1 or piped:
            raise TemplateError(f"can't give arguments to a non-function {head}")
        return head[1] if head[0] == "value" else self._operand(head[1], dot, scopes)

    def pipeline(self, toks: list[tuple[str, str]], dot: Any, scopes: list[dict[str, Any]]) -> Any:
        cmds: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for t in toks:
            if t[0] == "punct" and t[1] in "()":
                depth += 1 if t[1] == "(" else -1
            if t == ("punct", "|") and depth == 0:
                cmds.append([])
            else:
                cmds[-1].append(t)
        value: tuple[Any, ...] = ()
        for cmd in cmds:
            if not cmd:
                raise TemplateError("empty command in pipeline")
            value = (self._command(cmd, dot, scopes, value),)
        return value[0]

    def _decl(self, toks: list[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]], bool]:
        for i, t in enumerate(toks):
            if t[0] in ("decl", "assign"):
                names = [x[1] for x in toks[:i] if x[0] == "var"]
                return names, toks[i + 1 :], t[0] == "decl"
        return [], toks, False

    # -- statements
    def run(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]]) -> str:
        out: list[str] = []
        scopes = scopes + [{}]
        for node in nodes:
            if node.kind == "text":
                out.append(node.value)
            elif node.kind == "action":
                names, toks, declare = self._decl(node.value)
                value = self.pipeline(toks, dot, scopes)
                if names:
                    if declare:  # $x := v declares in this block
                        scopes[-1][names[0]] = value
                    else:  # $x = v assigns where $x was declared
                        next(sc for sc in reversed(scopes) if names[0] in sc)[names[0]] = value
                else:
                    out.append(_to_str(value))
            elif node.kind in ("if", "with"):
                names, toks, _ = self._decl(node.value)
                value = self.pipeline(toks, dot, scopes)
                if _truthy(value):
                    inner = [{names[0]: value}] if names else []
                    out.append(self.run(node.body, value if node.kind == "with" else dot, scopes + inner))
                else:
                    out.append(self.run(node.orelse, dot, scopes))
            elif node.kind == "range":
                names, toks, _ = self._decl(node.value)
                value = self.pipeline(toks, dot, scopes)
                items = sorted(value.items()) if isinstance(value, dict) else list(enumerate(value or []))
                if not items:
                    out.append(self.run(node.orelse, dot, scopes))
                for k, v in items:
                    bind = {names[-1]: v, **({names[0]: k} if len(names) == 2 else {})} if names else {}
                    out.append(self.run(node.body, v, scopes + [bind]))
        return "".join(out)


def render_chart(
    chart_dir: str | Path, values: dict[str, Any] | None = None, *, release: str = "cptr-demo", namespace: str = "default"
) -> dict[str, str]:
    """``helm template``: {template path: rendered text} for every template but ``_*`` helpers.

    ``values`` are merged over the chart's values.yaml (maps deeply, anything else replaced).
    """
    chart_dir = Path(chart_dir)
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    merged = _merge(yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}, values or {})
    data = {
        "Values": _floats(merged),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": True, "IsUpgrade": False, "Revision": 1},
        "Chart": {"Name": meta["name"], "Version": str(meta["version"]), "AppVersion": str(meta.get("appVersion", ""))},
        "Capabilities": {"KubeVersion": {"Version": "v1.30.0"}},
    }
    defines: dict[str, list[Node]] = {}
    trees: dict[str, list[Node]] = {}
    for path in sorted((chart_dir / "templates").rglob("*")):
        if path.is_file():
            rel = f"{meta['name']}/{path.relative_to(chart_dir)}"
            trees[rel] = _parse(_split(path.read_text()), rel, defines)
    r = Renderer(defines)
    out = {}
    for rel, tree in trees.items():
        if Path(rel).name.startswith("_"):
            continue
        try:
            out[rel] = r.run(tree, data, [{"$": data}])
        except TemplateError as e:
            raise type(e)(f"{rel}: {e}") from None
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(result.get(k), dict):
            result[k] = _merge(result[k], v)
        elif v is None:
            result.pop(k, None)  # Helm: null deletes a default
        else:
            result[k] = copy.deepcopy(v)
    return result


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendering (YAML files only; empty documents dropped)."""
    docs = []
    for rel, text in rendered.items():
        if rel.endswith((".yaml", ".yml")):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs
