"""Cloud credentials for tests: an AWS key pair and a Google service-account key file whose
`token_uri` is the fake's token endpoint (as google-auth honours it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

AWS_KEY_ID = "AKIASPENDGATETEST01"
AWS_SECRET = "spendgate-test-aws-secret-key/0000000000"


@dataclass(frozen=True)
class ServiceAccount:
    path: Path  # the key file, for GOOGLE_APPLICATION_CREDENTIALS
    public_key: str  # PEM, for FakeSettings.google_public_key
    private_key: str  # PEM: must never show up in a log, ledger row or response


def service_account(folder: Path, token_uri: str) -> ServiceAccount:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = folder / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "spendgate-test",
                "private_key_id": "0123456789abcdef",
                "private_key": private,
                "client_email": "gateway@spendgate-test.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": token_uri,
            }
        )
    )
    return ServiceAccount(path, public, private)


def cloud_env(account: ServiceAccount, folder: Path) -> dict[str, str]:
    """The environment a gateway reads its cloud credentials from: nothing from the host's own."""
    return {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": str(account.path),
    }
