"""Template filters for moments (console.timefmt): built in to every template (config.settings
TEMPLATES builtins), so no page writes a date its own way.

    {{ run.started_at|when }}            4 Dec 2026, 06:00 CET
    {{ run.started_at|when:"seconds" }}  4 Dec 2026, 06:00:15 CET
    {{ job.next_run_at|in_zone:job.timezone }}  the same moment in another zone, labelled
    {{ paused_until|clock }}             06:00 CET (today), else as `when`
    {{ point|day }} / {{ point|day:"short" }}  4 Dec 2026 / Fri 4 Dec
    {{ segment.last_changed_at|ago }}    <time title="4 Dec 2026, 06:00 CET">3 hours ago</time>
"""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from console import timefmt

register = template.Library()


@register.filter
def when(moment, arg: str = "") -> str:
    return timefmt.when(moment, seconds=arg == "seconds")


@register.filter
def in_zone(moment, tz_name: str) -> str:
    return timefmt.when(moment, tz_name=tz_name or "UTC")


@register.filter
def clock(moment, arg: str = "") -> str:
    return timefmt.clock(moment, seconds=arg == "seconds")


@register.filter
def day(moment, arg: str = "") -> str:
    return timefmt.day(moment, short=arg == "short")


@register.filter
def ago(moment) -> SafeString | str:
    if moment is None or moment == "":
        return ""
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', moment.isoformat(), timefmt.when(moment), timefmt.ago(moment)
    )


@register.simple_tag
def zone_name() -> str:
    return timefmt.zone_name()
