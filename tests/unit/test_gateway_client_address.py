"""Which client a request counts against: the peer, or X-Forwarded-For only
behind a trusted proxy, read right to left."""

import pytest

from gateway.client_address import client_subject, networks

PROXIES = networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # No trusted proxies configured: the header is whatever a client wrote.
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        # Trusted proxy: the address it appended.
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        # A client-written prefix is skipped: the proxy's entry is rightmost.
        ("10.0.0.2", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
        # Through two proxies of ours, headers split across lines.
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1", "10.1.2.3"], "198.51.100.1"),
        # Only our proxies: the furthest one is all we know.
        ("10.0.0.2", ["10.9.9.9"], "10.9.9.9"),
        # A proxy that sent no header, or garbage: the proxy itself.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["not-an-ip"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, <script>"], "10.0.0.2"),
        # Ports and brackets as some proxies write them.
        ("10.0.0.2", ["198.51.100.1:5555"], "198.51.100.1"),
        ("10.0.0.2", ["[2001:db8:1:2::5]:443"], "2001:db8:1:2::/64"),
        # IPv6 clients count per /64; IPv4-mapped addresses as IPv4.
        ("2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", [], "203.0.113.7"),
        ("fd00::1", ["2001:db8:9:9::1"], "2001:db8:9:9::/64"),
        # Not an IP peer (a Unix socket).
        (None, ["198.51.100.1"], "unknown"),
        ("", [], "unknown"),
    ],
)
def test_client_subject(peer, forwarded, expected):
    proxies = PROXIES if not (peer == "203.0.113.7" and forwarded) else ()
    assert client_subject(peer, forwarded, proxies) == expected


def test_untrusted_peer_ignores_the_header_even_with_proxies_configured():
    assert client_subject("203.0.113.7", ["10.0.0.2"], PROXIES) == "203.0.113.7"
