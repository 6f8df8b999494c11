"""Every error a metered call can end in, in one place. The steps raise them; the provider
answering the call decides how each looks on the wire (its status, error type and body), so
no step imports a provider and no provider's vocabulary leaks into the steps.

    SpendgateError                 a message, a status, extra response headers
    ├── Refused                    answered before anything leaves for the provider
    │   ├── InvalidRequest         400  malformed body, bad tags, client gone mid-body
    │   ├── AuthenticationFailed   401  no key, an unknown, revoked or expired key
    │   ├── PermissionDenied       403  a routing rule or an allowlist refuses the model
    │   ├── UnknownEndpoint        404  a path (or operation) the provider does not have
    │   ├── ModelNotPriced         404  no price for the model, so it cannot be metered
    │   ├── MethodNotAllowed       405  a known path, another method
    │   ├── RequestTooLarge        413  the body passes SPENDGATE_MAX_BODY_BYTES
    │   ├── RateLimited            429  the key's rpm / tpm / concurrency limit (retry-after)
    │   ├── BudgetExceeded         429  a budget has no room for the call's worst case
    │   ├── NotConfigured          500  the gateway lacks a setting this provider needs
    │   └── CountersUnavailable    503  the shared counters (Redis) are down, failing closed
    └── UpstreamUnavailable        no usable answer from the provider; `kind` goes to the ledger,
        │                          `attempts` says what forward tried
        ├── UpstreamUnreachable    502  connection refused, reset, DNS ...
        ├── UpstreamTimeout        504  no answer within the read timeout
        └── UpstreamCut            502  closed mid-response; once a stream has started it is
                                        raised into the server instead, which aborts the
                                        response so the client sees the cut too

The status is the gateway's choice and the same for every provider; a provider may still
answer with another one (see `Provider.error`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # only for the annotation: errors import nothing at run time
    from spendgate.forward import Attempts

__all__ = [
    "AuthenticationFailed",
    "BudgetExceeded",
    "CountersUnavailable",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelNotPriced",
    "NotConfigured",
    "PermissionDenied",
    "RateLimited",
    "Refused",
    "RequestTooLarge",
    "SpendgateError",
    "UnknownEndpoint",
    "UpstreamCut",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UpstreamUnreachable",
]


class SpendgateError(Exception):
    status: ClassVar[int] = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Refused(SpendgateError):
    """The call is answered by Spendgate itself; nothing was sent upstream."""


class InvalidRequest(Refused):
    status = 400


class AuthenticationFailed(Refused):
    status = 401


class PermissionDenied(Refused):
    status = 403


class UnknownEndpoint(Refused):
    status = 404


class ModelNotPriced(Refused):
    status = 404


class MethodNotAllowed(Refused):
    status = 405


class RequestTooLarge(Refused):
    status = 413


class RateLimited(Refused):
    status = 429


class BudgetExceeded(Refused):
    status = 429


class NotConfigured(Refused):
    status = 500


class CountersUnavailable(Refused):
    status = 503


class UpstreamUnavailable(SpendgateError):
    status = 502
    kind: ClassVar[str] = "unreachable"  # the ledger's status is `upstream_<kind>`, its error_type `<kind>`

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers)
        self.attempts: Attempts | None = None  # set by forward when it gives up


class UpstreamUnreachable(UpstreamUnavailable):
    pass


class UpstreamTimeout(UpstreamUnavailable):
    status = 504
    kind = "timeout"


class UpstreamCut(UpstreamUnavailable):
    kind = "cut"
