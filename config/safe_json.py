"""Parsing JSON request bodies so that no body can make the server answer 500.

Python's parser recurses once per nesting level: a body nested 100,000 deep raises RecursionError,
and one nested 900 deep parses but breaks whatever walks or serialises it later (json.dumps on the
way to a jsonb column). PostgreSQL refuses NUL (U+0000) in text and jsonb, and psycopg cannot encode
a lone surrogate (an escaped "\\ud800", or CESU-encoded bytes, which json.loads of bytes lets
through). So bodies are parsed here, nesting is bounded to MAX_DEPTH, and value_problem() names the
first value that cannot be stored, by its path, for callers to refuse or set aside.

Used by the inbound endpoints (integrations.inbound.http) and, as the default DRF parser, by every
management API body (SafeJSONParser).
"""

import json
import math
import re
from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64

# A lone (or CESU-paired) surrogate: never valid in UTF-8, so never storable.
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON tokens that matter for locating depth: strings (skipped whole), brackets, commas, colons.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


class TooDeep(ValueError):
    """The body nests deeper than MAX_DEPTH; `path` names where (e.g. "batch[3].traits")."""

    def __init__(self, path: str):
        self.path = path or "body"
        self.reason = f"nested deeper than {MAX_DEPTH} levels"
        super().__init__(f"{self.path}: {self.reason}")


def loads(raw: bytes | str, **kwargs) -> Any:
    """json.loads, refusing nesting deeper than MAX_DEPTH with TooDeep (a ValueError)."""
    try:
        value = json.loads(raw, **kwargs)
    except RecursionError:
        raise TooDeep(deep_path(raw)) from None
    # A body with fewer brackets than the limit cannot nest deeper: most bodies stop here.
    brackets = (b"[", b"{") if isinstance(raw, bytes) else ("[", "{")
    if raw.count(brackets[0]) + raw.count(brackets[1]) > MAX_DEPTH and _too_deep(value):
        raise TooDeep(deep_path(raw))
    return value


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def deep_path(raw: bytes | str, limit: int = 3) -> str:
    """The path of the first container nested deeper than MAX_DEPTH, its first `limit` steps."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    stack: list[list] = []  # [kind, key or index]
    last_string = None
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"{", b"["):
            if len(stack) >= MAX_DEPTH:
                return _format_path(stack[:limit])
            stack.append([token, None if token == b"{" else 0])
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif token == b",":
            if stack and stack[-1][0] == b"[":
                stack[-1][1] += 1
        elif token == b":":
            if stack and last_string is not None:
                stack[-1][1] = last_string
        else:
            last_string = token[1:-1].decode("utf-8", "replace")
    return _format_path(stack[:limit])


def _format_path(stack: list) -> str:
    path = ""
    for kind, step in stack:
        if step is None:  # an object whose first key is not read yet
            break
        path += f"[{step}]" if kind == b"[" else (f".{step}" if path else str(step))
    return path


def string_problem(value: str) -> str | None:
    """Why a string cannot be stored in PostgreSQL, or None."""
    if "\x00" in value:
        return "contains a NUL character (U+0000)"
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone surrogate (not valid UTF-8)"
    return None


def number_problem(value: float) -> str | None:
    if not math.isfinite(value):
        return "is not a finite number (NaN, Infinity or out of range)"
    return None


def value_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first key or value that cannot be stored as text or jsonb, or None."""
    stack = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            reason = string_problem(node)
        elif isinstance(node, float):
            reason = number_problem(node)
        elif isinstance(node, dict):
            for key, child in node.items():
                reason = string_problem(key) if isinstance(key, str) else None
                if reason:
                    return f"{where}.{key!r}" if where else repr(key), f"key {reason}"
                stack.append((f"{where}.{key}" if where else str(key), child))
            continue
        elif isinstance(node, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(node))
            continue
        else:
            continue
        if reason:
            return where or "body", reason
    return None


def storable(value: Any, max_chars: int = 200) -> Any:
    """A JSON-safe, bounded stand-in for a refused value, to show it with its reason (jsonb-safe)."""
    if isinstance(value, str):
        text = value if len(value) <= max_chars else value[:max_chars] + "…"
        return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    if isinstance(value, float) and number_problem(value):
        return repr(value)  # "nan", "inf": jsonb has no such numbers
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = json.dumps(value, default=str, allow_nan=True)[:max_chars] if _depth_ok(value) else "(nested too deep)"
    return storable(text, max_chars)


def _depth_ok(value: Any) -> bool:
    try:
        return not _too_deep(value)
    except TypeError:
        return True


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing (400, naming the field) what would otherwise become a 500: nesting
    deeper than MAX_DEPTH, NUL characters and lone surrogates; NaN and Infinity stay refused."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        try:
            data = loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except TooDeep as exc:
            raise exceptions.ValidationError({exc.path: [exc.reason]}) from None
        except ValueError as exc:  # includes UnicodeDecodeError
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        problem = value_problem(data)
        if problem:
            raise exceptions.ValidationError({problem[0]: [problem[1]]})
        return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
