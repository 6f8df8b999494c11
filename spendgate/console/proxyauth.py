"""Sign-in through a trusted header set by an auth proxy (oauth2-proxy, Google IAP, ...).

The header is believed only when the connection comes from one of SPENDGATE_UI_TRUSTED_PROXIES;
from anywhere else it is ignored, as if it were absent (anyone can send a header).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.requests import Request

# Google IAP prefixes the email with its namespace: 'accounts.google.com:ada@acme.example'.
_NAMESPACE_PREFIXES = ("accounts.google.com:",)


@dataclass(frozen=True, slots=True)
class TrustedHeader:
    user_header: str
    groups_header: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, user_header: str, groups_header: str, cidrs: str) -> TrustedHeader:
        networks = []
        for part in (p.strip() for p in cidrs.split(",")):
            if part:
                try:
                    networks.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    raise ValueError(f"SPENDGATE_UI_TRUSTED_PROXIES: {part!r} is not a CIDR") from None
        return cls(user_header.lower(), groups_header.lower(), tuple(networks))

    def trusts(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def identity(self, request: Request) -> tuple[str, tuple[str, ...]] | None:
        """(email, groups) from a trusted proxy's headers; None when absent or not trusted."""
        raw = request.headers.get(self.user_header, "").strip()
        if not raw or not self.trusts(request.client.host if request.client else None):
            return None
        for prefix in _NAMESPACE_PREFIXES:
            raw = raw.removeprefix(prefix)
        groups = tuple(g.strip() for g in request.headers.get(self.groups_header, "").split(",") if g.strip())
        return raw.lower(), groups
