"""Template filters that say stored values in words (console.words); built in to every template."""

from django import template

from console import words

register = template.Library()


@register.filter
def import_counts(counts) -> str:
    return " · ".join(words.import_counts(counts)) or "nothing new"


@register.filter
def property_value(value) -> str:
    return words.property_value(value)


@register.filter
def property_name(name) -> str:
    return words.property_name(str(name))


@register.filter
def segment_source(segment) -> str:
    """'imported from Amplitude' for a segment (or a segment type value)."""
    return words.segment_source(getattr(segment, "type", segment) or "")


@register.filter
def segment_choice(segment) -> str:
    """A segment as an option of a list: 'Power Users · imported from Amplitude'."""
    return f"{segment.name} · {words.segment_source(segment.type)}"


@register.filter
def schedule(job) -> str:
    """'Daily at 06:00 Europe/Berlin', 'Hourly', 'One time': a job's cadence as one phrase."""
    return words.schedule(job)


@register.filter
def cause(change) -> str:
    """A ledger row's cause in words: 'import run #3', 'push #11' (never 'import_run')."""
    return words.cause(getattr(change, "cause_type", ""), getattr(change, "cause_id", None))
