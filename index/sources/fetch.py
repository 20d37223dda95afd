"""Fetching a web page that a user named, without letting the request reach the host's own network.

A chat user can type any address, so every address (and every redirect) is checked: only public
internet addresses are fetched unless a setting allows a network explicitly. The host name is
resolved once per hop and the connection goes to an address that was checked, never to a second
answer from DNS (which a hostile name server could point at the host's own network). One deadline
covers the whole fetch, and the page size is enforced on the bytes received and on the bytes they
decompress to, as they arrive.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import unicodedata
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urljoin, urlsplit, urlunsplit

import httpcore
import idna

from index import __version__
from index.errors import VerbatimError

HTML_TYPES = {"text/html", "application/xhtml+xml"}
USER_AGENT = f"VerbatimBot/{__version__} (news quotation bot; fetches pages its admins add)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# Translation prefixes whose last 32 bits are the IPv4 address a packet is delivered to (RFC 6052,
# RFC 8215); the local-use prefix is read as its /96 form, the one DNS64 synthesises.
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
ASCII_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(VerbatimError):
    pass


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float = 15.0  # for the whole fetch: every connect, header, body and redirect
    max_bytes: int = 5_000_000  # both as received (compressed) and as decompressed
    max_redirects: int = 5
    allowed_networks: tuple[str, ...] = ()  # CIDRs allowed although not public (for tests, intranets)


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final address, after redirects
    html: bytes  # the body (a feed's XML when fetched as one); empty when not modified
    content_type: str
    status: int = 200  # 304: not modified since the validators sent (`Validators`), so no body
    etag: str = ""  # the validators to send next time, when the server gave them
    last_modified: str = ""


@dataclass(frozen=True)
class Validators:
    """What a conditional request sends: the ETag and Last-Modified of the copy already held."""

    etag: str = ""
    last_modified: str = ""


def normalise_url(url: str) -> str:
    """The address without surrounding space or fragment, with a lower-case scheme, an ASCII (IDNA)
    host and a percent-encoded path. Anything that is not a usable web address raises FetchError."""
    text = url.strip().strip("<>")
    shown = _shown(text)

    def invalid(reason: str) -> FetchError:
        return FetchError(f"{shown} is not a web address: {reason}. Give a full http:// or https:// link.")

    if not text:
        raise invalid("it is empty")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise invalid("it contains a space or a control character")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:  # "Port out of range 0-65535", "Invalid IPv6 URL", ...
        raise invalid(str(error).lower()) from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise invalid("only http:// and https:// links are fetched")
    if "@" in parts.netloc:
        raise FetchError(f"{shown} holds a user name or password; such addresses are not fetched. "
                         "Give the address without them.")
    if not parts.hostname:
        raise invalid("it has no host name")
    if port == 0:
        raise invalid("port 0 is not a port")
    host = _ascii_host(parts.hostname, invalid)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return urlunsplit((scheme, netloc, path, query, ""))


def _ascii_host(host: str, invalid: Any) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.isascii():
        ascii_host = host.lower()
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise invalid(f"the host name {host!r} is not valid ({error})") from None
    labels = ascii_host.rstrip(".").split(".")
    if not ASCII_HOST.fullmatch(ascii_host) or len(ascii_host) > 253 or any(len(label) > 63 for label in labels):
        raise invalid(f"the host name {host!r} is not valid")
    return ascii_host


def _shown(text: str) -> str:
    """User input quoted on one line, short enough to read."""
    return repr(text if len(text) <= 200 else text[:200] + "…")


def carried_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address delivers to, when it is a way of reaching IPv4."""
    if address.ipv4_mapped:
        return (address.ipv4_mapped,)
    if any(address in network for network in NAT64_NETWORKS):
        return (ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF),)
    if address.sixtofour:
        return (address.sixtofour,)
    if address.teredo:
        return address.teredo  # (server, client); the client is un-obfuscated by the standard library
    return ()


def address_allowed(address: IPAddress, allowed_networks: Iterable[Network] = ()) -> bool:
    """Whether a connection to `address` may be made: a public address, or one in an allowed network.
    IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by what they carry."""
    allowed = tuple(allowed_networks)
    if any(address in network for network in allowed):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        carried = carried_ipv4(address)
        if carried:
            return all(address_allowed(ipv4, allowed) for ipv4 in carried)
        if address.is_site_local:  # deprecated, and not counted as private by the standard library
            return False
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified and not address.is_link_local)


def resolve_host(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to, in the resolver's order. The only place a name is resolved."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchError(f"The host {host!r} could not be found ({error.strerror}). Check the address.") from error
    except UnicodeError as error:
        raise FetchError(f"The host name {host!r} is not valid. Check the address.") from error
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError(f"The host {host!r} has no address. Check the address.")
    return tuple(addresses)


def check_address(url: str, policy: FetchPolicy) -> tuple[IPAddress, ...]:
    """Resolve the host of a normalised `url` once and return its addresses if every one may be
    fetched; the caller connects to these, so a later DNS answer never matters."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = resolve_host(host, parts.port or (443 if parts.scheme == "https" else 80))
    allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in policy.allowed_networks]
    for address in addresses:
        if not address_allowed(address, allowed):
            carried = carried_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else ()
            via = f" (which reaches {', '.join(map(str, carried))})" if carried else ""
            raise FetchError(
                f"{host} resolves to {address}{via}, a private, loopback, link-local or reserved address; "
                "Verbatim only fetches public web pages."
            )
    return addresses


class _Deadline:
    """One time limit over a whole fetch. Each connect, handshake, read and write is given only the
    time left, and at the limit a watchdog shuts the fetch's connections, because a step that reads
    many times (a TLS handshake fed one byte a second) would otherwise restart its timeout per read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._shut_connections)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        return time.monotonic() >= self._end

    def clamp(self, timeout: float | None, expired: type[Exception]) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise expired(f"the {self.seconds:g} s deadline passed")
        return left if timeout is None else min(timeout, left)

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: shutting it down ends the connection even after TLS has taken over
        # the original socket object, and it cannot point at an unrelated socket later.
        with self._lock:
            self._watched.append(sock.dup())

    def _shut_connections(self) -> None:
        with self._lock:
            for sock in self._watched:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the peer

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # server_hostname is the URL's host name, so SNI and certificate checks use the name, not the IP.
        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      self._deadline.clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects a host name only to the addresses `check_address` returned for it."""

    def __init__(self, deadline: _Deadline) -> None:
        self._deadline = deadline
        self._vetted: dict[str, tuple[IPAddress, ...]] = {}
        self._sockets = httpcore.SyncBackend()

    def pin(self, host: str, addresses: tuple[IPAddress, ...]) -> None:
        self._vetted[host] = addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = self._vetted.get(host)
        if not addresses:
            raise httpcore.ConnectError(f"{host} was not checked before connecting")
        failure = httpcore.ConnectError(f"no address of {host} accepted the connection")
        for address in addresses:
            try:
                stream = self._sockets.connect_tcp(
                    str(address), port, timeout=self._deadline.clamp(timeout, httpcore.ConnectTimeout),
                    socket_options=socket_options or [],
                )
            except httpcore.ConnectError as error:
                failure = error
                continue
            self._deadline.watch(stream.get_extra_info("socket"))
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def fetch_page(url: str, policy: FetchPolicy, *, accept: frozenset[str] = frozenset(HTML_TYPES),
               validators: Validators | None = None) -> FetchedPage:
    """GET an HTML page (or another of the `accept` types), following at most `max_redirects`
    redirects, each one checked. With `validators`, a 304 answer comes back as status 304."""
    current = normalise_url(url)
    deadline = _Deadline(policy.timeout_seconds)
    backend = _PinnedBackend(deadline)
    try:
        with httpcore.ConnectionPool(network_backend=backend, retries=0, http1=True, http2=False) as pool:
            for _hop in range(policy.max_redirects + 1):
                parts = urlsplit(current)
                backend.pin(parts.hostname or "", check_address(current, policy))
                try:
                    with pool.stream("GET", _core_url(parts), headers=_request_headers(parts, accept, validators),
                                     extensions={"timeout": dict.fromkeys(
                                         ("connect", "read", "write", "pool"), policy.timeout_seconds)}) as response:
                        target = _redirect_target(current, response)
                        if target is None:
                            return _read_page(current, response, policy, accept, validators)
                except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as error:
                    if deadline.passed() or isinstance(error, httpcore.TimeoutException):
                        late = f"{current} did not answer within {policy.timeout_seconds:g} s; try again later."
                        raise FetchError(late) from error
                    # One short line: the error may quote whatever the server sent.
                    detail = " ".join(str(error).split()).rstrip(".")[:200] or type(error).__name__
                    raise FetchError(f"Could not fetch {current}: {detail}.") from error
                current = target
            raise FetchError(f"{url} redirects more than {policy.max_redirects} times; give the final address.")
    finally:
        deadline.close()


def _core_url(parts: SplitResult) -> httpcore.URL:
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return httpcore.URL(scheme=parts.scheme.encode("ascii"), host=(parts.hostname or "").encode("ascii"),
                        port=parts.port, target=target.encode("ascii"))


def _request_headers(parts: SplitResult, accept: frozenset[str],
                     validators: Validators | None) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Host", parts.netloc.encode("ascii")),  # the name, although the connection goes to a pinned address
        (b"User-Agent", USER_AGENT.encode("ascii")),
        (b"Accept", ",".join(sorted(accept)).encode("ascii")),
        (b"Accept-Encoding", b"gzip"),
    ]
    # Validators are the server's own header values, sent back only if they are plain header text.
    if validators and validators.etag.isascii() and validators.etag.isprintable():
        headers.append((b"If-None-Match", validators.etag.encode("ascii")))
    if validators and validators.last_modified.isascii() and validators.last_modified.isprintable():
        headers.append((b"If-Modified-Since", validators.last_modified.encode("ascii")))
    return [(name, value) for name, value in headers if value]


def _header(response: httpcore.Response, name: bytes) -> str:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


def _redirect_target(url: str, response: httpcore.Response) -> str | None:
    """The checked-for-form address a redirect points to, or None for a response that is not one."""
    if response.status not in REDIRECT_STATUSES:
        return None
    raw = next((value for key, value in response.headers if key.lower() == b"location"), b"")
    if not raw.strip():
        raise FetchError(f"{url} redirects without saying where to.")
    try:
        location = raw.decode("utf-8")
    except UnicodeDecodeError:
        location = raw.decode("latin-1")
    try:
        return normalise_url(urljoin(url, location.strip()))
    except (FetchError, ValueError):
        raise FetchError(
            f"{url} redirects to {_shown(location)}, which is not a web address Verbatim fetches.") from None


def _read_page(url: str, response: httpcore.Response, policy: FetchPolicy, accept: frozenset[str],
               validators: Validators | None) -> FetchedPage:
    etag, last_modified = _header(response, b"etag"), _header(response, b"last-modified")
    if response.status == 304 and validators is not None:
        return FetchedPage(url=url, html=b"", content_type="", status=304, etag=etag or validators.etag,
                           last_modified=last_modified or validators.last_modified)
    if not 200 <= response.status < 300:
        raise FetchError(f"{url} answered HTTP {response.status}; check the address.")
    content_type = _header(response, b"content-type").split(";")[0].strip().lower()
    if content_type not in accept:
        wanted = "a web page (HTML)" if accept == HTML_TYPES else "one of " + ", ".join(sorted(accept))
        raise FetchError(f"{url} is {content_type or 'of no stated type'}, not {wanted}.")
    declared = _header(response, b"content-length")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"{url} is {int(declared):,} bytes; pages over {policy.max_bytes:,} bytes are not fetched.")
    decoder = _Decoder(url, _header(response, b"content-encoding"), policy.max_bytes)
    received = 0
    for chunk in response.iter_stream():
        received += len(chunk)  # counted before decompressing: a stream of empty blocks is refused too
        if received > policy.max_bytes:
            raise FetchError(f"{url} is over {policy.max_bytes:,} bytes; pages that large are not fetched.")
        decoder.feed(chunk)
    return FetchedPage(url=url, html=decoder.finish(), content_type=content_type, status=response.status,
                       etag=etag, last_modified=last_modified)


class _Decoder:
    """Undoes a Content-Encoding chunk by chunk, refusing the page as soon as its decompressed size
    passes `limit`: no more than `limit` + 1 bytes are ever produced, whatever the compression ratio."""

    def __init__(self, url: str, encoding: str, limit: int) -> None:
        self._url = url
        self._limit = limit
        self._body = bytearray()
        name = encoding.lower()
        if name in {"", "identity"}:
            self._inflater = None
        elif name in {"gzip", "x-gzip", "deflate"}:
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, found from the data
        else:
            raise FetchError(f"{url} sent the page encoded as {encoding!r}, which Verbatim does not decode; "
                             "it asks for gzip or no compression.")

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._append(data)
        elif not self._inflater.eof:  # anything after the end of the compressed stream is ignored
            # max_length stops zlib one byte past the room left, so a bomb is caught having produced
            # that much; shorter output means zlib consumed all of `data`.
            self._append(self._inflate(lambda inflater: inflater.decompress(data, self._limit - len(self._body) + 1)))

    def finish(self) -> bytes:
        if self._inflater is not None:
            self._append(self._inflate(lambda inflater: inflater.flush()))
        return bytes(self._body)

    def _inflate(self, step: Any) -> bytes:
        try:
            return bytes(step(self._inflater))
        except zlib.error as error:
            raise FetchError(f"{self._url} sent a damaged compressed page ({error}).") from error

    def _append(self, data: bytes) -> None:
        if len(self._body) + len(data) > self._limit:
            raise FetchError(
                f"{self._url} decompresses to over {self._limit:,} bytes; pages that large are not fetched.")
        self._body.extend(data)
