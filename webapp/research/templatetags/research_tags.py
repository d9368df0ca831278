"""Template filters of the research app."""
from django import template

register = template.Library()


@register.filter
def mdcell(value: object) -> str:
    """A value fit for one cell of a Markdown table: pipes escaped, on one line."""
    return " ".join(str(value).split()).replace("|", "\\|")
