"""An OpenID Connect provider on loopback for the console's sign-in tests: `oidc-provider-mock`, behind
a small WSGI layer that checks PKCE the way a real provider does (the mock ignores it): the token
request's code_verifier must hash (S256) to the code_challenge its authorization request sent."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import make_server

CLIENT_ID = "spendgate-console"
CLIENT_SECRET = "oidc-test-secret"


@dataclass
class PkceCheck:
    app: Callable[..., Iterable[bytes]]
    challenges: dict[str, str] = field(default_factory=dict)  # code -> challenge
    checked: list[str] = field(default_factory=list)  # codes whose verifier matched

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, query = environ.get("PATH_INFO", ""), parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            form = parse_qs(body.decode())
            code, verifier = form.get("code", [""])[0], form.get("code_verifier", [""])[0]
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if not verifier or self.challenges.get(code) != digest:
                start_response("400 Bad Request", [("content-type", "application/json")])
                return [b'{"error": "invalid_grant", "error_description": "PKCE verification failed"}']
            self.checked.append(code)
        if path == "/oauth2/authorize" and environ["REQUEST_METHOD"] == "POST":
            challenge = query.get("code_challenge", [""])[0]
            method = query.get("code_challenge_method", [""])[0]

            def capture(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
                for name, value in headers:
                    if name.lower() == "location" and method == "S256":
                        code = parse_qs(urlsplit(value).query).get("code", [""])[0]
                        if code:
                            self.challenges[code] = challenge
                return start_response(status, headers, *rest)

            return self.app(environ, capture)
        return self.app(environ, start_response)


@dataclass
class Provider:
    issuer: str
    pkce: PkceCheck


def console_settings(provider: Provider, **extra: str) -> dict[str, str]:
    """Gateway settings that sign people in with `provider`."""
    return {
        "ui_auth": "oidc",
        "ui_oidc_issuer": provider.issuer,
        "ui_oidc_client_id": CLIENT_ID,
        "ui_oidc_client_secret": CLIENT_SECRET,
        **extra,
    }


@contextmanager
def oidc_provider(users: dict[str, dict[str, Any]]) -> Iterator[Provider]:
    """A provider with predefined users (sub -> claims, e.g. email and groups) on 127.0.0.1."""
    import oidc_provider_mock

    app = oidc_provider_mock.app(
        user_claims=[oidc_provider_mock.User(sub=sub, claims=claims) for sub, claims in users.items()]
    )
    pkce = PkceCheck(app)
    server = make_server("127.0.0.1", 0, pkce, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Provider(f"http://127.0.0.1:{server.server_port}", pkce)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
