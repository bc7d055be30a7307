"""The IP address rule, the one definition used by the collector and by ingestion.

`truncate` keeps the network, never the host: an IPv4 address keeps its first 24 bits, an IPv6
address its first 48 (the last 80 zeroed). Addresses that carry an IPv4 address inside IPv6 are
truncated as that IPv4 address (IPv4-mapped `::ffff:a.b.c.d`), or to the prefix that stops short
of its host part (6to4 `2002:AABB:CCDD::/48` holds a whole IPv4 address in its first 48 bits, so
it keeps 40). Zone ids (`fe80::1%eth0`) name an interface of the sender's machine and are dropped.
`full` keeps the address, normalised. Anything that does not parse as an address (garbage, empty,
too long) gives None: the field is left out rather than stored as if it were an address.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Literal

IpMode = Literal["truncate", "full", "none"]

# the longest textual IPv6 address is 45 characters; a zone id adds a short interface name
MAX_LENGTH = 64
IPV4_PREFIX = 24
IPV6_PREFIX = 48
SIXTOFOUR_PREFIX = 40  # 16 bits of 2002::/16, then the first 24 bits of the embedded IPv4


def _parse(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = raw.strip()
    if not text or len(text) > MAX_LENGTH:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:  # the zone names the sender's interface: not kept
            ip = ipaddress.IPv6Address(int(ip))
    return ip


def _keep_prefix(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, bits: int) -> str:
    mask = ((1 << bits) - 1) << (ip.max_prefixlen - bits)
    return str(type(ip)(int(ip) & mask))


@functools.lru_cache(maxsize=65_536)
def truncate_ip(raw: str) -> str | None:
    """The network part of an address (see the module docstring); None if it is not one."""
    ip = _parse(raw)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return _keep_prefix(ip, IPV4_PREFIX)
    prefix = SIXTOFOUR_PREFIX if ip.sixtofour is not None else IPV6_PREFIX
    return _keep_prefix(ip, prefix)


@functools.lru_cache(maxsize=65_536)
def normalise_ip(raw: str) -> str | None:
    """The address in its canonical text form; None if it is not one."""
    ip = _parse(raw)
    return None if ip is None else str(ip)


def apply_ip_rule(raw: str | None, mode: IpMode) -> str | None:
    """What is stored for an address under `mode` (None: nothing is stored)."""
    if raw is None or mode == "none":
        return None
    return truncate_ip(raw) if mode == "truncate" else normalise_ip(raw)


def replace_values(value: Any, old: str, new: str | None) -> Any:
    """`value` (parsed JSON) with every string member equal to `old` set to `new`; keys stay.

    The address is the same personal datum wherever else an event repeats it, so the rule is
    applied to those copies too.
    """
    if isinstance(value, dict):
        return {k: replace_values(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_values(v, old, new) for v in value]
    return new if value == old else value
