"""One table of IP addresses and what the rule stores for each (pipelines/ip.py).

Every path that stores an address checks itself against this table: the rule itself, the
collector (before Kafka) and ingestion (the SQL pass, for producers that skip the collector).
"""

from __future__ import annotations

from typing import NamedTuple


class IpCase(NamedTuple):
    raw: str
    truncated: str | None  # TRACKFLOW_IP_MODE=truncate (the default)
    normalised: str | None  # =full
    has_host_bits: bool  # whether `raw` itself identifies a host (must never be stored)


IP_CASES: list[IpCase] = [
    IpCase("203.0.113.77", "203.0.113.0", "203.0.113.77", True),
    IpCase(" 203.0.113.77 ", "203.0.113.0", "203.0.113.77", True),
    IpCase("203.0.113.0", "203.0.113.0", "203.0.113.0", False),
    IpCase(
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        "2001:db8:85a3::",
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        True,
    ),  # noqa: E501
    IpCase(
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:85a3::",
        "2001:db8:85a3::8a2e:370:7334",
        True,
    ),  # noqa: E501
    IpCase("2001:db8::1", "2001:db8::", "2001:db8::1", True),
    IpCase("fe80::1", "fe80::", "fe80::1", True),
    IpCase("fe80::1%eth0", "fe80::", "fe80::1", True),
    IpCase("::1", "::", "::1", True),
    IpCase("::ffff:203.0.113.77", "203.0.113.0", "203.0.113.77", True),
    IpCase("2002:cb00:714d::1", "2002:cb00:7100::", "2002:cb00:714d::1", True),  # 6to4
    IpCase("garbage", None, None, False),
    IpCase("1:2", None, None, False),  # a colon does not make an address
    IpCase("", None, None, False),
    IpCase("2001:db8::1" + "0" * 80, None, None, False),  # over-long
    IpCase("203.0.113.777", None, None, False),
]
