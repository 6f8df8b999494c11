"""Checks an AWS Signature Version 4 the way AWS does: recompute it with botocore and compare.

Only the headers the client listed in `SignedHeaders` take part, the path is the raw one the
client sent (SigV4 encodes it again), and the timestamp must be within AWS's 15 minutes.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

MAX_SKEW_S = 15 * 60


class SignatureRejected(Exception):
    """Why a request is not accepted: HTTP status, AWS error type, message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _fields(authorization: str) -> dict[str, str]:
    scheme, _, rest = authorization.partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        raise SignatureRejected(
            403,
            "IncompleteSignatureException",
            "Authorization header requires AWS4-HMAC-SHA256 with Credential, SignedHeaders and Signature.",
        )
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise SignatureRejected(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
        )
    return fields


def verify(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    access_key_id: str,
    secret_access_key: str,
    service: str,
) -> None:
    """Raise SignatureRejected unless `headers` carry a valid signature by this key for `service`."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureRejected(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = _fields(authorization)
    key_id, date, region, signed_service, terminator = (fields["Credential"].split("/") + [""] * 5)[:5]
    if key_id != access_key_id:
        raise SignatureRejected(
            403, "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if signed_service != service or terminator != "aws4_request":
        raise SignatureRejected(
            403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected(
            403, "IncompleteSignatureException", "Missing or malformed X-Amz-Date."
        ) from None
    if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_S or not stamp.startswith(date):
        raise SignatureRejected(
            403,
            "InvalidSignatureException",
            f"Signature expired: the request time {stamp} is more than 15 minutes from the server's time.",
        )
    signed: dict[str, Any] = {name: headers.get(name, "") for name in fields["SignedHeaders"].split(";")}
    request = AWSRequest(method=method, url=url, headers=signed, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(access_key_id, secret_access_key), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SignatureRejected(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your "
            "AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
