"""Fetching a web page that a user named, without letting the request reach the host's own network.

A chat user can type any address, so every address (and every redirect) is checked: only public
internet addresses are fetched unless a setting allows a network explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from index import __version__
from index.errors import VerbatimError

HTML_TYPES = {"text/html", "application/xhtml+xml"}
USER_AGENT = f"VerbatimBot/{__version__} (news quotation bot; fetches pages its admins add)"


class FetchError(VerbatimError):
    pass


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float = 15.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    allowed_networks: tuple[str, ...] = ()  # CIDRs allowed although not public (for tests, intranets)


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final address, after redirects
    html: bytes
    content_type: str


def normalise_url(url: str) -> str:
    """The address without surrounding space or fragment, with a lower-case scheme and host."""
    url = url.strip().strip("<>")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise FetchError(f"{url!r} is not a web address; give a full http:// or https:// link.")
    netloc = parts.netloc.lower() if "@" not in parts.netloc else parts.netloc
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def check_address(url: str, policy: FetchPolicy) -> None:
    """Refuse an address whose host resolves to anything but the public internet."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise FetchError("Addresses with a user name or password are not fetched.")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchError(f"The host {host!r} could not be found ({error.strerror}). Check the address.") from error
    allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in policy.allowed_networks]
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in allowed):
            continue
        if not address.is_global or address.is_multicast:
            raise FetchError(
                f"{host} resolves to {address}, a private, loopback, link-local or reserved address; "
                "Verbatim only fetches public web pages."
            )


def fetch_page(url: str, policy: FetchPolicy, client: httpx.Client | None = None) -> FetchedPage:
    """GET an HTML page, following at most `max_redirects` redirects, each one checked."""
    deadline = time.monotonic() + policy.timeout_seconds
    current = normalise_url(url)
    own_client = client is None
    client = client or httpx.Client(
        follow_redirects=False, timeout=httpx.Timeout(policy.timeout_seconds), headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )
    try:
        for _hop in range(policy.max_redirects + 1):
            check_address(current, policy)
            try:
                with client.stream("GET", current, headers={"Accept": "text/html,application/xhtml+xml"}) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"{current} redirects without saying where to.")
                        current = normalise_url(urljoin(current, location))
                        continue
                    return _read_page(current, response, policy, deadline)
            except httpx.TimeoutException as error:
                raise FetchError(f"{current} did not answer within {policy.timeout_seconds:g} s; try again later.") from error
            except httpx.HTTPError as error:
                raise FetchError(f"Could not fetch {current}: {error}.") from error
        raise FetchError(f"{url} redirects more than {policy.max_redirects} times; give the final address.")
    finally:
        if own_client:
            client.close()


def _read_page(url: str, response: httpx.Response, policy: FetchPolicy, deadline: float) -> FetchedPage:
    if response.status_code >= 400:
        raise FetchError(f"{url} answered HTTP {response.status_code}; check the address.")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in HTML_TYPES:
        raise FetchError(f"{url} is {content_type or 'of no stated type'}, not a web page (HTML).")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"{url} is {int(declared):,} bytes; pages over {policy.max_bytes:,} bytes are not fetched.")
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > policy.max_bytes:
            raise FetchError(f"{url} is over {policy.max_bytes:,} bytes; pages that large are not fetched.")
        if time.monotonic() > deadline:
            raise FetchError(f"{url} took over {policy.timeout_seconds:g} s to send; try again later.")
    return FetchedPage(url=url, html=bytes(body), content_type=content_type)
