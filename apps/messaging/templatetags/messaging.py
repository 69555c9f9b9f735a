"""Rendering of message bodies: plain text with safe links and line breaks, never HTML."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import urlize
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# What urlize writes on the links it makes; the typed text is escaped, so it cannot contain
# this sequence itself.
_URLIZE_REL = ' rel="nofollow">'
_SAFE_REL = ' rel="noopener noreferrer nofollow" target="_blank">'


@register.filter(is_safe=True)
def message_body(value: Any) -> SafeString:
    """Escape a message's text, link its web addresses (opening apart, telling nothing to the
    site linked) and keep its line breaks."""
    text = str(value or "").replace("\r\n", "\n").replace("\r", "\n")
    html = urlize(text, nofollow=True, autoescape=True)
    html = html.replace(_URLIZE_REL, _SAFE_REL).replace("\n", "<br>")
    return mark_safe(html)  # noqa: S308 - every piece of the text went through urlize's escaping
