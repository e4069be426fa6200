"""Template filters that say stored values in words (console.words); built in to every template."""

from django import template

from console import words

register = template.Library()


@register.filter
def import_counts(counts):
    return " · ".join(words.import_counts(counts)) or "nothing read yet"


@register.filter
def property_value(value):
    return words.property_value(value)


@register.filter
def property_name(name):
    return words.property_name(str(name))


@register.filter
def segment_source(segment):
    """'imported from Amplitude' for a segment (or a segment type value)."""
    return words.segment_source(getattr(segment, "type", segment) or "")


@register.filter
def segment_choice(segment):
    """A segment as an option of a list: 'Power Users · imported from Amplitude'."""
    return f"{segment.name} · {words.segment_source(segment.type)}"
