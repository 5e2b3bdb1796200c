"""Who is calling, for per-client rate limits: the peer address, or the
client named in X-Forwarded-For when the peer is a trusted proxy.

X-Forwarded-For is read right to left: every trusted proxy appends the
address it saw, so the first address that is not a trusted proxy is the
client; anything left of it was written by the client and proves nothing.
IPv6 clients are grouped by their /64, which one subscriber usually holds
whole (per-address limits would be escaped by changing the host bits); for
logins also by their /56 and /48 (`wider_prefixes`), since a subscriber
may hold a /56 or a /48 and so 256 or 65,536 /64s (review L2).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port" as some proxies write it
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in proxies)


def _subject(address: Address) -> str:
    if address.version == 6:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def wider_prefixes(subject: str) -> dict[int, str]:
    """{56: "2001:db8:1::/56", 48: "2001:db8:1::/48"} for an IPv6 subject
    of `client_subject`; {} for an IPv4 address or "unknown"."""
    if ":" not in subject:
        return {}
    network = ipaddress.ip_network(subject, strict=False)
    return {bits: str(network.supernet(new_prefix=bits)) for bits in (56, 48)}


def client_subject(peer: str | None, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The client's address as a rate-limit subject ("203.0.113.7", "2001:db8:1:2::/64").

    `forwarded_for`: every X-Forwarded-For header of the request, in order.
    A peer that is not an IP address (a Unix socket) is "unknown".
    """
    address = _parse(peer or "")
    if address is None:
        return "unknown"
    if not proxies or not _trusted(address, proxies):
        return _subject(address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        candidate = _parse(hop)
        if candidate is None:
            # A proxy of ours wrote something that is not an address: the
            # nearest proxy is the best we know.
            break
        address = candidate
        if not _trusted(address, proxies):
            break
    return _subject(address)
