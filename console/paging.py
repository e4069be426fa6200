"""Tables that page: keyset pagination and totals that stay fast on big tables.

A page is read with one row more than it shows; that row only says whether a next page exists. The
link to the next page carries the sort key of the page's last row (`after`), and the next page
starts right after it: no OFFSET (whose cost grows with the depth), and rows arriving meanwhile
never shift a row onto two pages.

Totals are exact while counting is cheap: the count stops at TOTAL_EXACT_UP_TO rows and at
TOTAL_TIMEOUT_MS; past either, the page shows PostgreSQL's planner estimate, labelled "about".

Each table on a page has its own parameter prefix, so paging one keeps the others where they are.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.http import QueryDict

from config.params import BadParameter, int_param
from config.safe_json import string_problem

PAGE_SIZE = 50
TOTAL_EXACT_UP_TO = 10_000
TOTAL_TIMEOUT_MS = 250
CURSOR_MAX_CHARS = 2_000


@dataclass(frozen=True)
class Total:
    """How many rows the table has: exact, or the planner's estimate (never shown without "about")."""

    value: int
    exact: bool

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"about {_round(self.value):,}"


def _round(value: int) -> int:
    """An estimate shown to two significant figures: its last digits would pretend to a precision it lacks."""
    if value < 100:
        return value
    magnitude = 10 ** (len(str(value)) - 2)
    return round(value / magnitude) * magnitude


def count_total(
    queryset: QuerySet, *, exact_up_to: int = TOTAL_EXACT_UP_TO, timeout_ms: int = TOTAL_TIMEOUT_MS
) -> Total:
    """The rows of `queryset`: counted when that is cheap, else estimated (Total.exact says which).

    The count reads at most exact_up_to + 1 rows and is cancelled after timeout_ms (a filter that
    matches few rows of a big table can still make it read them all); then the planner's estimate
    stands in, at least exact_up_to + 1 when the count got that far.
    """
    queryset = queryset.order_by().select_related(None)  # a count needs no joined columns
    counted = None
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout_ms}ms"])
        try:
            with transaction.atomic():  # a savepoint: a cancelled count leaves the transaction usable
                counted = queryset[: exact_up_to + 1].count()
        except OperationalError:
            counted = None
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
    if counted is not None and counted <= exact_up_to:
        return Total(counted, True)
    return Total(max(estimate_rows(queryset), exact_up_to + 1 if counted else 0), False)


def estimate_rows(queryset: QuerySet) -> int:
    """PostgreSQL's estimate of the rows `queryset` returns (EXPLAIN, nothing executed)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


@dataclass
class Page:
    rows: list
    total: Total | None
    first_row: int  # 1-based position of the first row shown (for "51–100 of …")
    next_url: str | None  # the query string of the next page, None on the last
    first_url: str | None  # the query string of the first page, None on the first

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1


def keyset_page(
    queryset: QuerySet,
    order: Sequence[str],
    params: QueryDict,
    *,
    prefix: str = "",
    size: int = PAGE_SIZE,
    total: bool = True,
) -> Page:
    """One page of `queryset` in `order` (e.g. ("-id",) or ("name", "id")); the last key must be unique.

    The keys may be annotations. `params` (request.GET) holds `<prefix>after`, the cursor, and
    `<prefix>at`, the position shown; the URLs of the next and the first page keep every other
    parameter as it is.
    """
    after_name, at_name = f"{prefix}after", f"{prefix}at"
    keys = [(name.lstrip("-"), name.startswith("-")) for name in order]
    after = decode_cursor(params.get(after_name, ""), len(keys), after_name)
    if after is not None:
        after = _typed(queryset, keys, after, after_name)
    page_qs = queryset.order_by(*order)
    if after is not None:
        page_qs = page_qs.filter(_after(keys, after))
    rows = list(page_qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    first_row = (int_param(params, at_name) or 1) if after is not None else 1

    def url(**changes) -> str:
        query = params.copy()
        for name, value in changes.items():
            query.pop(name, None)
            if value is not None:
                query[name] = value
        return "?" + urlencode(list(query.lists()), doseq=True)

    next_url = None
    if more and rows:
        cursor = encode_cursor([getattr(rows[-1], name) for name, _ in keys])
        next_url = url(**{after_name: cursor, at_name: str(first_row + size)})
    first_url = url(**{after_name: None, at_name: None}) if after is not None else None
    return Page(
        rows=rows,
        total=count_total(queryset) if total else None,
        first_row=first_row,
        next_url=next_url,
        first_url=first_url,
    )


def _after(keys: list[tuple[str, bool]], values: list) -> Q:
    """Rows after `values` in the order of `keys`: (k1 > v1) or (k1 = v1 and k2 > v2) or …"""
    condition = Q(pk__in=[])
    for index, (name, descending) in enumerate(keys):
        step = Q(**{f"{name}__{'lt' if descending else 'gt'}": values[index]})
        for (earlier, _), value in zip(keys[:index], values[:index], strict=True):
            step &= Q(**{earlier: value})
        condition |= step
    return condition


def _typed(queryset: QuerySet, keys: list[tuple[str, bool]], values: list, name: str) -> list:
    """Cursor values as their fields (or annotations) hold them, a date read back from its ISO text;
    BadParameter if one does not fit."""
    typed = []
    for (key, _), value in zip(keys, values, strict=True):
        if key in queryset.query.annotations:
            field = queryset.query.annotations[key].output_field
        else:
            field = queryset.model._meta.get_field("id" if key == "pk" else key)
        try:
            typed.append(field.to_python(value))
        except ValidationError:
            raise BadParameter(name, "is not a page link of this table; go back to the first page.") from None
    return typed


def encode_cursor(values: list) -> str:
    plain = [value.isoformat() if isinstance(value, dt.datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(raw: str, length: int, name: str) -> list | None:
    """The values a cursor holds, or BadParameter (400 naming it): a cursor is typed into URLs too."""
    if not raw:
        return None
    bad = BadParameter(name, "is not a page link of this table; go back to the first page.")
    if len(raw) > CURSOR_MAX_CHARS or not raw.isascii():
        raise bad
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise bad from None
    if not isinstance(values, list) or len(values) != length:
        raise bad
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad
        if isinstance(value, int) and abs(value) >= 2**63:
            raise bad
        if isinstance(value, str) and (string_problem(value) or len(value) > 1000):
            raise bad
    return values
