"""Compiling a template version for a blast: merges to tags, tracked links, pixel, footer.

The result is sent as is to every recipient; what differs per recipient travels as
substitutions (`merge.substitutions`), so the body is built once per blast.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass

from outreach.content import merge
from outreach.content.models import TemplateVersion

HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
UNTRACKED = ("mailto:", "tel:", "sms:", "#")
STOP_TEXT = "Reply STOP to opt out"


@dataclass(frozen=True)
class CompiledEmail:
    """A blast's email with substitution tags in place of everything per recipient."""

    subject: str
    html: str
    text: str
    merges: merge.Merges
    links: tuple[str, ...]  # tracked URLs by index, as the template wrote them


@dataclass(frozen=True)
class CompiledSms:
    """A blast's text message with its merges."""

    body: str
    merges: merge.Merges


def tracking_urls(base_url: str) -> dict[str, str]:
    """Per-recipient URL patterns; %%t%% becomes the message's signed token."""
    base = base_url.rstrip("/")
    return {"open": f"{base}/o/{merge.TOKEN_TAG}.gif", "click": f"{base}/c/{merge.TOKEN_TAG}/",
            "unsubscribe": f"{base}/u/{merge.TOKEN_TAG}"}


def compile_email(version: TemplateVersion, base_url: str, track: bool = True) -> CompiledEmail:
    """Compile an email version: merge tags, links rewritten for click tracking, footer, pixel."""
    merges, (subject, html, text) = merge.extract(version.subject, version.html, version.text)
    urls = tracking_urls(base_url)
    links: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        url = htmllib.unescape(match.group(3)).strip()
        if not track or url.startswith(UNTRACKED) or "%%" in url or not url:
            return match.group(0)
        if url not in links:
            links.append(url)
        return f"{match.group(1)}{match.group(2)}{urls['click']}{links.index(url)}{match.group(2)}"

    html = HREF.sub(rewrite, html)
    unsubscribe = urls["unsubscribe"]
    if "%%u%%" not in version.html:
        footer = (f'<p class="outreach-footer">Don\'t want these emails? '
                  f'<a href="{unsubscribe}">Unsubscribe</a>.</p>')
        html = _before_body_end(html, footer)
    if "%%u%%" not in version.text:
        text = text.rstrip("\n") + f"\n\n--\nUnsubscribe: {unsubscribe}\n"
    if track:
        # The hidden honeypot link is followed only by link scanners, never by people.
        honeypot = (f'<a href="{urls["click"]}h" style="display:none" aria-hidden="true" '
                    f'tabindex="-1"></a>')
        pixel = f'<img src="{urls["open"]}" width="1" height="1" alt="" border="0">'
        html = _before_body_end(html, honeypot + pixel)
    html = html.replace("%%u%%", unsubscribe)
    text = text.replace("%%u%%", unsubscribe)
    return CompiledEmail(subject, html, text, merges, tuple(links))


def compile_sms(version: TemplateVersion) -> CompiledSms:
    """Compile an SMS version, with the opt-out sentence appended when the template asks."""
    body = version.body.rstrip()
    if version.append_stop and STOP_TEXT.lower() not in body.lower():
        body = f"{body}\n{STOP_TEXT}"
    merges, (compiled,) = merge.extract(body)
    return CompiledSms(compiled, merges)


def _before_body_end(html: str, fragment: str) -> str:
    index = html.lower().rfind("</body>")
    return html + fragment if index < 0 else html[:index] + fragment + html[index:]
