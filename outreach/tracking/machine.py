"""Telling machine opens and clicks (privacy proxies, link scanners) from human ones.

Machine engagement is recorded but counted apart (DESIGN.md invariant 7). The rules:

Opens are machine when
- the request comes from Apple's 17.0.0.0/8 network: Apple Mail Privacy Protection fetches
  every image through its proxies (with a generic user agent) whether or not the mail is read;
- the user agent names a link scanner or script (SCANNER_MARKERS below) or is empty;
- the pixel is fetched within MACHINE_OPEN_SECONDS (default 2) of the message's `sent_at`:
  nobody reads that fast, prefetchers do (this rule and its click twin are applied by the
  buffer's flush, which reads the messages anyway, so a hit itself needs no SQL);
- (SendGrid events) the provider flags `sg_machine_open`.
Opens through Gmail's and Yahoo's image proxies ("GoogleImageProxy", "YahooMailProxy") are
HUMAN: those proxies fetch the image when the person opens the mail.

Clicks are machine when
- the request is a HEAD (scanners probe links; browsers GET them);
- the user agent names a scanner or script, or is empty;
- the click comes within MACHINE_CLICK_SECONDS (default 2) of `sent_at`;
- it is the hidden honeypot link (`/c/<token>/h`), which no person can see or tab to;
- in one flushed batch, the same message's clicks from the same IP come within
  HONEYPOT_WINDOW seconds of a honeypot hit, or cover BURST_LINKS or more distinct links within
  BURST_SECONDS (scanners follow every link at once).
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, MutableMapping
from typing import Any

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
HUMAN_PROXY_MARKERS = ("googleimageproxy", "yahoomailproxy")
SCANNER_MARKERS = (
    "bingpreview",  # Microsoft Safe Links / Outlook previews
    "safelinks", "microsoft office existence discovery", "ms-office",
    "proofpoint", "mimecast", "barracuda", "ironport", "forcepoint", "symantec", "trendmicro",
    "sophos", "fortiguard", "urlscan", "zscaler",
    "python-requests", "python-urllib", "aiohttp", "httpx", "curl/", "wget/",
    "go-http-client", "okhttp", "java/", "apache-httpclient", "libwww-perl", "scrapy",
    "headlesschrome", "phantomjs", "puppeteer", "playwright",
    "facebookexternalhit", "slackbot", "twitterbot", "linkedinbot", "discordbot",
    "whatsapp/", "telegrambot", "skypeuripreview", "googlebot", "bingbot", "yandexbot",
)
# One pass over the user agent instead of a substring test per marker (hot: every hit).
SCANNER_PATTERN = re.compile("|".join(map(re.escape, SCANNER_MARKERS)))
HONEYPOT_WINDOW = 10.0
BURST_LINKS = 3
BURST_SECONDS = 5.0


def is_apple_proxy(ip: str | None) -> bool:
    """True for an address in Apple's 17.0.0.0/8 (Mail Privacy Protection's proxies)."""
    # Only a dotted quad starting "17." can parse into 17.0.0.0/8 (ipaddress refuses leading
    # zeros, and IPv6 text is never in an IPv4 network): the parse, ~10 us, is for those only.
    if ip is None or not ip.startswith("17."):
        return False
    try:
        return ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False


def is_human_proxy(user_agent: str | None) -> bool:
    """True for image proxies that fetch on a person's behalf when they open the mail."""
    ua = (user_agent or "").lower()
    return any(marker in ua for marker in HUMAN_PROXY_MARKERS)


def is_scanner(user_agent: str | None) -> bool:
    """True for an empty user agent or one naming a link scanner, preview bot or script."""
    ua = (user_agent or "").strip().lower()
    if not ua:
        return True
    return SCANNER_PATTERN.search(ua) is not None


def too_soon(seconds_after_send: float | None, threshold: float) -> bool:
    """True when the hit came within threshold seconds of sending (prefetch, scanners)."""
    return seconds_after_send is not None and 0 <= seconds_after_send < threshold


def classify_open(ip: str | None, user_agent: str | None, seconds_after_send: float | None,
                  threshold: float = 2) -> str | None:
    """Why an open is a machine's ("apple_proxy", "scanner", "too_soon"), or None if human."""
    if is_human_proxy(user_agent):
        return None
    if is_apple_proxy(ip):
        return "apple_proxy"
    if is_scanner(user_agent):
        return "scanner"
    if too_soon(seconds_after_send, threshold):
        return "too_soon"
    return None


def classify_click(method: str, user_agent: str | None, seconds_after_send: float | None,
                   threshold: float = 2, honeypot: bool = False) -> str | None:
    """Why a click is a machine's ("honeypot", "head", "scanner", "too_soon"), or None."""
    if honeypot:
        return "honeypot"
    if method.upper() == "HEAD":
        return "head"
    if is_scanner(user_agent):
        return "scanner"
    if too_soon(seconds_after_send, threshold):
        return "too_soon"
    return None


def flag_bursts(clicks: Iterable[MutableMapping[str, Any]]) -> int:
    """Mark clicks near a honeypot hit or in a many-link burst as machine; return how many.

    Each click is a dict with "m" (message id), "ip", "p" (link position, -1 for the
    honeypot), "t" (unix time), "x" (machine flag) and "r" (reason); flagged ones are updated.
    """
    groups: dict[tuple[Any, Any], list[MutableMapping[str, Any]]] = defaultdict(list)
    for click in clicks:
        groups[(click.get("m"), click.get("ip"))].append(click)
    flagged = 0
    for group in groups.values():
        if len(group) < 2:
            continue
        traps = [c["t"] for c in group if c.get("r") == "honeypot"]
        times = sorted(group, key=lambda c: c["t"])
        for click in times:
            if click.get("x"):
                continue
            near_trap = any(abs(click["t"] - t) <= HONEYPOT_WINDOW for t in traps)
            window = {c.get("p") for c in times if abs(c["t"] - click["t"]) <= BURST_SECONDS}
            if near_trap or len(window) >= BURST_LINKS:
                click["x"], click["r"] = True, "honeypot_ip" if near_trap else "burst"
                flagged += 1
    return flagged
