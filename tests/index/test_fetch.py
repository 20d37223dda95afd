"""The fetcher against hostile servers and hostile DNS, all on loopback servers the tests start.

DNS answers are faked by replacing `socket.getaddrinfo`; connections to anything but loopback are
recorded and refused, so no test sends a packet off the machine.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from index.sources.fetch import FetchError, FetchPolicy, check_address, fetch_page, normalise_url
from tests.index.web_support import Pages as Site, serving

PAGE = b"<!doctype html><html><head><title>Dam</title></head><body><p>The dam was repaired.</p></body></html>"
LOOPBACK = ("127.0.0.1/32",)
PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def site():
    with serving(Site) as httpd:
        yield httpd.server_address[1]


@pytest.fixture
def raw_server():
    """A TCP server on loopback that hands each connection to `serve(conn)` in its own thread."""
    listeners: list[socket.socket] = []

    def start(serve: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept_loop():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=_serve_and_close, args=(serve, conn), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()


def _serve_and_close(serve, conn):
    try:
        serve(conn)
    except OSError:
        pass  # the client hung up, which is what these tests want it to do
    finally:
        conn.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def policy(**overrides) -> FetchPolicy:
    overrides.setdefault("allowed_networks", LOOPBACK)
    overrides.setdefault("timeout_seconds", 5.0)
    return FetchPolicy(**overrides)


def fake_dns(monkeypatch, answers: dict[str, list[list[str]]]) -> list[str]:
    """Answer lookups of the given names with successive address lists; returns the names looked up."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        looked_up.append(host)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def record_connections(monkeypatch) -> list[str]:
    """Record every host a TCP connection is opened to; refuse all but loopback (no packet leaves)."""
    real = socket.create_connection
    targets: list[str] = []

    def create_connection(address, *args, **kwargs):
        targets.append(address[0])
        try:
            if not ipaddress.ip_address(address[0]).is_loopback:
                raise ConnectionRefusedError(111, "refused by the test: not loopback")
        except ValueError:
            pass  # a host name: the unfixed client resolving again
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return targets


# --- DNS rebinding -------------------------------------------------------------------------------

def test_a_second_dns_answer_is_never_used(site, monkeypatch):
    """The name is public when checked and loopback when asked again: the loopback server is never reached."""
    Site.routes["/"] = (200, {"Content-Type": "text/html"}, PAGE, 0.0)
    fake_dns(monkeypatch, {"news.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    targets = record_connections(monkeypatch)
    with pytest.raises(FetchError, match="Could not fetch"):
        fetch_page(f"http://news.example:{site}/", policy(allowed_networks=()))
    assert Site.seen == []
    assert targets == [PUBLIC_IP]


def test_the_vetted_address_is_connected_to_and_the_name_sent_as_host(site, monkeypatch):
    Site.routes["/a"] = (302, {"Location": f"http://other.example:{site}/b", "Content-Type": "text/html"}, b"", 0.0)
    Site.routes["/b"] = (200, {"Content-Type": "text/html"}, PAGE, 0.0)
    looked_up = fake_dns(monkeypatch, {"news.example": [["127.0.0.1"], ["10.9.9.9"]],
                                       "other.example": [["127.0.0.1"], ["10.9.9.9"]]})
    targets = record_connections(monkeypatch)
    page = fetch_page(f"http://news.example:{site}/a", policy())
    assert page.html == PAGE and page.url == f"http://other.example:{site}/b"
    assert looked_up == ["news.example", "other.example"]  # one lookup per hop, none by the HTTP client
    assert targets == ["127.0.0.1", "127.0.0.1"]
    assert [r["host"] for r in Site.seen] == [f"news.example:{site}", f"other.example:{site}"]


def test_every_resolved_address_is_checked(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example": [[PUBLIC_IP, "10.0.0.7"]]})
    with pytest.raises(FetchError, match="10.0.0.7"):
        check_address("http://mixed.example/", policy(allowed_networks=()))


def test_tls_names_the_host_not_the_pinned_address(raw_server, monkeypatch):
    """SNI (and so certificate checking) uses the host name while the connection goes to the vetted IP."""
    hellos: list[bytes] = []

    def capture_hello(conn):
        hellos.append(conn.recv(4096))

    port = raw_server(capture_hello)
    fake_dns(monkeypatch, {"secure.example": [["127.0.0.1"]]})
    targets = record_connections(monkeypatch)
    with pytest.raises(FetchError):
        fetch_page(f"https://secure.example:{port}/", policy())
    assert targets == ["127.0.0.1"]
    assert hellos and hellos[0][:1] == b"\x16" and b"secure.example" in hellos[0]


# --- IPv6 forms that carry IPv4 --------------------------------------------------------------------

@pytest.mark.parametrize(
    "address, allowed",
    [
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.1.2.3", False),
        (f"::ffff:{PUBLIC_IP}", True),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254 (cloud metadata)
        ("64:ff9b::c0a8:101", False),  # NAT64 of 192.168.1.1
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 of 10.0.0.1
        ("64:ff9b:1:1234::7f00:1", False),
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:5db8:d822::1", True),  # 6to4 of 93.184.216.34
        ("2001:0:5db8:d822:0:0:80ff:fffe", False),  # Teredo, client 127.0.0.1 (stored XOR ffffffff)
        ("2001:0:5db8:d822:0:0:f5ff:fefe", False),  # Teredo, client 10.0.1.1
        ("2001:0:a00:1::a247:27dd", False),  # Teredo, server 10.0.0.1
        ("2001:0:5db8:d822::a247:27dd", True),  # Teredo, server and client 93.184.216.34
        ("::7f00:1", False),  # IPv4-compatible (deprecated)
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fec0::1", False),  # site-local (deprecated)
        ("fc00::1", False),
        ("ff02::1", False),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address the fetcher must refuse, not one we bind
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        (PUBLIC_IP, True),
    ],
)
def test_addresses_are_judged_by_the_ipv4_they_carry(monkeypatch, address, allowed):
    fake_dns(monkeypatch, {"host.example": [[address]]})
    strict = policy(allowed_networks=())
    if allowed:
        assert check_address("http://host.example/", strict) == (ipaddress.ip_address(address),)
    else:
        with pytest.raises(FetchError, match="only fetches public web pages"):
            check_address("http://host.example/", strict)


def test_an_allowed_network_covers_its_mapped_form(monkeypatch):
    fake_dns(monkeypatch, {"intranet.example": [["::ffff:127.0.0.1"]]})
    assert check_address("http://intranet.example/", policy(allowed_networks=LOOPBACK))


# --- One deadline ---------------------------------------------------------------------------------

def _trickle(prefix: bytes, read_request=_read_request, seconds: float = 30.0):
    """Answer with `prefix`, then one more byte every half second."""
    def serve(conn):
        read_request(conn)
        conn.sendall(prefix)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(b"a")
            time.sleep(0.5)
    return serve


@pytest.mark.parametrize(
    "prefix",
    [b"HTTP/1.1 200 OK\r\nX-Slow: ", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 999999\r\n\r\n"],
    ids=["headers", "body"],
)
def test_a_server_that_trickles_is_cut_off_at_the_deadline(raw_server, prefix):
    port = raw_server(_trickle(prefix))
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer within 2 s"):
        fetch_page(f"http://127.0.0.1:{port}/", policy(timeout_seconds=2))
    assert time.monotonic() - started < 3.5


def test_a_tls_handshake_that_trickles_is_cut_off_at_the_deadline(raw_server):
    # After the ClientHello: a TLS record header announcing 16 KB of handshake, then a byte at a time.
    port = raw_server(_trickle(b"\x16\x03\x03\x40\x00", read_request=lambda conn: conn.recv(4096)))
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer within 2 s"):
        fetch_page(f"https://127.0.0.1:{port}/", policy(timeout_seconds=2))
    assert time.monotonic() - started < 3.5


def test_the_deadline_covers_all_redirects_together(site):
    for hop in "abc":
        Site.routes[f"/{hop}"] = (302, {"Location": f"/{chr(ord(hop) + 1)}", "Content-Type": "text/html"}, b"", 0.8)
    Site.routes["/d"] = (200, {"Content-Type": "text/html"}, PAGE, 0.0)
    assert fetch_page(f"http://127.0.0.1:{site}/c", policy(timeout_seconds=2)).html == PAGE  # one hop fits
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer within 2 s"):
        fetch_page(f"http://127.0.0.1:{site}/a", policy(timeout_seconds=2))  # 3 × 0.8 s does not
    assert time.monotonic() - started < 3.5


# --- Size, before and after decompressing ---------------------------------------------------------

@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * 50_000_000, compresslevel=9)


def test_a_gzip_bomb_is_refused_before_it_is_inflated(site, gzip_bomb):
    assert len(gzip_bomb) < 100_000  # small on the wire: the compressed size alone does not catch it
    Site.routes["/bomb"] = (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, gzip_bomb, 0.0)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match="decompresses to over 100,000 bytes"):
            fetch_page(f"http://127.0.0.1:{site}/bomb", policy(max_bytes=100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak:,} bytes while refusing a 50 MB bomb"
    assert time.monotonic() - started < 2


def test_compressed_bytes_count_against_the_limit(site):
    """Empty deflate blocks decompress to nothing, so only counting the bytes received stops them."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    stream = squeezer.compress(PAGE) + squeezer.flush(zlib.Z_SYNC_FLUSH)  # ends byte-aligned
    stream += b"\x00\x00\x00\xff\xff" * 50_000  # empty stored blocks: 5 bytes in, nothing out
    stream += b"\x01\x00\x00\xff\xff" + struct.pack("<II", zlib.crc32(PAGE), len(PAGE))  # last block, trailer
    assert len(stream) > 200_000 and gzip.decompress(stream) == PAGE
    Site.routes["/drip"] = (200, {"Content-Type": "text/html", "Content-Encoding": "gzip",
                                  "Transfer-Encoding": "chunked"}, _chunked(stream), 0.0)
    with pytest.raises(FetchError, match="over 100,000 bytes"):
        fetch_page(f"http://127.0.0.1:{site}/drip", policy(max_bytes=100_000))


def _chunked(data: bytes, size: int = 8192) -> bytes:
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def test_gzip_pages_are_decoded(site):
    Site.routes["/z"] = (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, gzip.compress(PAGE), 0.0)
    assert fetch_page(f"http://127.0.0.1:{site}/z", policy()).html == PAGE
    assert Site.seen[0]["accept-encoding"] == "gzip"


@pytest.mark.parametrize(
    "encoding, body, message",
    [("gzip", b"\x1f\x8b\x08\x00garbage" * 10, "damaged compressed page"),
     ("br", b"\x0b\x02\x80hello\x03", "encoded as 'br'"),
     ("gzip, gzip", gzip.compress(gzip.compress(PAGE)), "encoded as 'gzip, gzip'")],
    ids=["corrupt", "brotli", "double"],
)
def test_encodings_that_cannot_be_decoded_safely_are_refused(site, encoding, body, message):
    Site.routes["/e"] = (200, {"Content-Type": "text/html", "Content-Encoding": encoding}, body, 0.0)
    with pytest.raises(FetchError, match=message):
        fetch_page(f"http://127.0.0.1:{site}/e", policy())


def test_a_garbage_answer_is_reported_in_one_short_line(raw_server):
    port = raw_server(lambda conn: (_read_request(conn), conn.sendall(b"garbage " * 8000 + b"\r\n\r\n")))
    with pytest.raises(FetchError, match="Could not fetch") as raised:
        fetch_page(f"http://127.0.0.1:{port}/", policy())
    message = str(raised.value)
    assert "\n" not in message and len(message) < 300


def test_a_server_that_closes_at_once_gets_a_clean_message(raw_server):
    port = raw_server(_read_request)
    with pytest.raises(FetchError, match=r"Server disconnected without sending a response\.$"):
        fetch_page(f"http://127.0.0.1:{port}/", policy())


def test_huge_headers_are_refused(raw_server):
    port = raw_server(lambda conn: (_read_request(conn), conn.sendall(
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 1000) for i in range(1000)) + b"\r\n")))
    with pytest.raises(FetchError, match="Could not fetch"):
        fetch_page(f"http://127.0.0.1:{port}/", policy())


# --- Addresses and redirects that are not web addresses -------------------------------------------

@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1:99999/", "port out of range"),
        ("http://example.org:http/", "not a web address"),
        ("http://example.org:0/", "port 0"),
        ("http:///just/a/path", "no host name"),
        ("http://", "no host name"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://example.org/", "only http:// and https://"),
        ("http://exa mple.org/", "space"),
        ("https://example.org/a b", "space"),
        ("http://example.org/\x00", "control character"),
        ("http://☃.example/", "host name '☃.example' is not valid"),
        ("http://a..b/", "not valid"),
        ("http://" + "a" * 64 + ".example/", "not valid"),
        ("http://exa$mple.org/", "not valid"),
        ("http://[::1/", "invalid ipv6"),
        ("http://user:secret@example.org/", "user name or password"),
        ("http://@example.org/", "user name or password"),
    ],
)
def test_malformed_addresses_get_a_one_line_message(url, message):
    with pytest.raises(FetchError, match=message) as raised:
        fetch_page(url, policy())
    assert "\n" not in str(raised.value)


def test_addresses_are_normalised_to_one_form():
    assert normalise_url(" <HTTPS://Bücher.Example/Straße?q=ä#top> ") == \
        "https://xn--bcher-kva.example/Stra%C3%9Fe?q=%C3%A4"
    assert normalise_url("http://[::1]:8080") == "http://[::1]:8080/"
    assert normalise_url("http://example.org/a%20b") == "http://example.org/a%20b"


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "javascript:alert(1)", "http://127.0.0.1:99999/", "http://[::1/", "gopher://x/"],
)
def test_redirects_to_what_is_not_a_web_address_are_refused_clearly(site, location):
    Site.routes["/r"] = (302, {"Location": location, "Content-Type": "text/html"}, b"", 0.0)
    with pytest.raises(FetchError, match="redirects to .* not a web address"):
        fetch_page(f"http://127.0.0.1:{site}/r", policy())


def test_a_redirect_with_non_ascii_location_is_followed(raw_server):
    def serve(conn):
        request = _read_request(conn)
        if request.startswith(b"GET /start"):
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(PAGE), PAGE))
    port = raw_server(serve)
    page = fetch_page(f"http://127.0.0.1:{port}/start", policy())
    assert page.url == f"http://127.0.0.1:{port}/caf%C3%A9" and page.html == PAGE


def test_other_statuses_are_refused(site):
    Site.routes["/304"] = (304, {"Content-Type": "text/html"}, b"", 0.0)
    Site.routes["/303-nowhere"] = (303, {"Content-Type": "text/html"}, b"", 0.0)
    with pytest.raises(FetchError, match="HTTP 304"):
        fetch_page(f"http://127.0.0.1:{site}/304", policy())
    with pytest.raises(FetchError, match="without saying where"):
        fetch_page(f"http://127.0.0.1:{site}/303-nowhere", policy())
