"""Sign-in with the company's identity provider: OpenID Connect, authorization code flow with PKCE.

authlib builds the authorization request (state, nonce, S256 code challenge) and the token request;
joserfc checks the ID token (signature against the provider's published keys, issuer, audience,
expiry, nonce); aiohttp, the gateway's HTTP client, carries the two calls to the provider. The
state, nonce and verifier wait in the database between the two legs (`oidc_logins`), so the
callback may land on any replica.

The `email` claim names the user; the groups claim (SPENDGATE_UI_OIDC_GROUPS_CLAIM) maps to roles.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson

from spendgate.clock import iso
from spendgate.console.sessions import token_hash
from spendgate.store.people import OidcLogin, PeopleStore

LOGIN_MINUTES = 10  # how long the provider may take to send the user back


class SignInError(Exception):
    """Sign-in could not complete; the message is safe to show the person."""


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    email: str
    groups: tuple[str, ...]
    next_path: str
    subject: str


class OidcClient:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scopes: str = "openid email profile",
        groups_claim: str = "groups",
        timeout_s: float = 10.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = scopes
        self.groups_claim = groups_claim
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _get_json(self, url: str, token: str | None = None) -> dict[str, Any]:
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession(timeout=self._timeout) as http, http.get(url, headers=headers) as r:
            if r.status != 200:
                raise SignInError(f"the identity provider answered {r.status} at {url}")
            data = await r.json(content_type=None)
        if not isinstance(data, dict):
            raise SignInError(f"the identity provider sent no JSON object from {url}")
        return data

    async def metadata(self) -> dict[str, Any]:
        # Read per sign-in, not cached: sign-ins are rare and the provider may rotate its endpoints.
        return await self._get_json(f"{self.issuer}/.well-known/openid-configuration")

    async def begin(self, store: PeopleStore, redirect_uri: str, next_path: str, now: datetime) -> str:
        """The provider's authorization URL to send the browser to."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        meta = await self.metadata()
        state, verifier, nonce = generate_token(32), generate_token(64), generate_token(32)
        login = OidcLogin(
            state_hash=token_hash(state),
            code_verifier=verifier,
            nonce=nonce,
            next_path=next_path,
            created_at=iso(now),
            expires_at=iso(now + timedelta(minutes=LOGIN_MINUTES)),
        )
        await asyncio.to_thread(store.save_oidc_login, login)
        return str(
            prepare_grant_uri(
                meta["authorization_endpoint"],
                self.client_id,
                "code",
                redirect_uri=redirect_uri,
                scope=self.scopes,
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
            )
        )

    async def finish(
        self, store: PeopleStore, params: Mapping[str, str], redirect_uri: str, now: datetime
    ) -> OidcIdentity:
        """Exchange the callback's code for tokens and check the ID token; who signed in."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        if "error" in params:
            raise SignInError(
                f"the identity provider said: {params.get('error_description') or params['error']}"
            )
        state, code = params.get("state", ""), params.get("code", "")
        if not state or not code:
            raise SignInError("the identity provider sent no code; start again")
        login = await asyncio.to_thread(store.take_oidc_login, token_hash(state), iso(now))
        if login is None:
            raise SignInError("this sign-in is unknown, used or older than 10 minutes; start again")
        meta = await self.metadata()
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=login.code_verifier,
            client_id=self.client_id,
        )
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        if self._client_secret:  # client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1)
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as http,
            http.post(meta["token_endpoint"], data=body, headers=headers) as r,
        ):
            text = await r.text()
            try:
                tokens = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise SignInError(
                    f"the identity provider's token endpoint answered {r.status}: {text[:200]}"
                ) from None
            if r.status != 200 or not isinstance(tokens, dict):
                detail = (
                    tokens.get("error_description") or tokens.get("error") if isinstance(tokens, dict) else ""
                )
                raise SignInError(
                    f"the identity provider refused the code ({r.status} {detail or ''})".strip()
                )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the identity provider sent no ID token (is 'openid' among the scopes?)")
        claims = await self._claims(id_token, meta, login.nonce)
        if claims.get("email") is None or self.groups_claim not in claims:
            # Many providers put email and groups only in userinfo.
            access = tokens.get("access_token")
            if isinstance(access, str) and meta.get("userinfo_endpoint"):
                info = await self._get_json(meta["userinfo_endpoint"], access)
                if info.get("sub") == claims.get("sub"):
                    claims = {**info, **claims} if claims.get("email") else {**claims, **info}
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInError("the identity provider sent no email for this account")
        if claims.get("email_verified") is False:
            raise SignInError(f"the identity provider has not verified {email}")
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        return OidcIdentity(
            email=email.strip().lower(),
            groups=tuple(str(g) for g in groups),
            next_path=login.next_path,
            subject=str(claims.get("sub", "")),
        )

    async def _claims(self, id_token: str, meta: Mapping[str, Any], nonce: str) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        keys = KeySet.import_key_set(await self._get_json(str(meta["jwks_uri"])))  # type: ignore[arg-type]
        try:
            token = jwt.decode(id_token, keys)
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": meta.get("issuer", self.issuer)},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInError(f"the ID token did not check out: {exc}") from None
        return dict(token.claims)
