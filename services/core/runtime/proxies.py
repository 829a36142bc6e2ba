"""Who is calling, when a proxy may stand in between: the client address of a request.

The peer (the TCP connection's other end) is the client, unless it is one of
MOTCUA_TRUSTED_PROXIES: then the client is the right-most address of X-Forwarded-For that is
not a trusted proxy. Everything left of that was written by the client itself and proves
nothing; trusting it (or the left-most entry) would let anyone pick a new address per request
and walk around a per-client rate limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 192.168.0.0/16, ::1"`` → networks; ValueError naming a bad entry."""
    networks = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


@dataclass(frozen=True)
class TrustedProxies:
    networks: Sequence[Network] = ()

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5 on a dual-stack socket
        return any(ip in network for network in self.networks)

    def client_of(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client address of a request from ``peer`` carrying these X-Forwarded-For
        header values (in order; each a comma-separated list, nearest hop last)."""
        if peer is None:
            return "unknown"
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        # Only trusted proxies in the chain (or none at all): the request began among them.
        return hops[0] if hops else peer
