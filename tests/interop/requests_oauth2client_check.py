"""Drives keygate with a third-party OAuth client library (requests-oauth2client):
discovery, client_credentials (Bearer and DPoP), calls to a protected endpoint, refresh,
introspection and revocation, with a client secret and with private_key_jwt (a key-pair
client registered with public_jwks, keys made by jwskate), and tokens for protected
resources (RFC 8707 `resource`: `aud`, scopes, refresh narrowing, invalid_target), token
exchange (RFC 8693: a two-hop chain with nested `act`, narrowing refused wider) and the JWT
bearer grant (RFC 7523 §2.1: a trusted issuer's token, single-use `jti`). Exits non-zero at
the first mismatch.

usage: requests_oauth2client_check.py BASE_URL ORG CLIENT_ID CLIENT_SECRET USER_ID
"""

import sys
import time
import uuid

import requests
from jwskate import Jwk, JwkSet, SignedJwt
from requests_oauth2client import (
    DPoPToken,
    InvalidClient,
    InvalidGrant,
    InvalidScope,
    InvalidTarget,
    OAuth2Client,
    PrivateKeyJwt,
)

MCP = "https://mcp.example.com/mcp"
FILES = "https://files.example.com/api"


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}")
        sys.exit(1)
    print(f"ok: {message}")


def main():
    base, org, client_id, client_secret, user_id = sys.argv[1:6]
    issuer = f"{base}/v1/{org}"
    client = OAuth2Client.from_discovery_endpoint(
        f"{issuer}/.well-known/oauth-authorization-server",
        issuer=issuer,
        auth=(client_id, client_secret),
        testing=True,  # plain http on loopback
    )
    check(client.token_endpoint == f"{issuer}/oauth/token", "discovery found the token endpoint")
    me = f"{issuer}/user/me"

    token = client.client_credentials()
    check(token.token_type.lower() == "bearer", "client_credentials gives a Bearer token")
    response = requests.get(me, auth=token, timeout=10)
    check(response.status_code == 200, f"/user/me with the Bearer token: {response.status_code}")
    check(response.json()["user_id"] == user_id, "/user/me names the key's owner")

    refreshed = client.refresh_token(token)
    check(refreshed.refresh_token and refreshed.refresh_token != token.refresh_token,
          "a Bearer refresh rotates the refresh token")

    info = client.introspect_token(refreshed.access_token)
    check(info["active"] is True and info["client_id"] == client_id, "introspection: active")
    client.revoke_access_token(refreshed.access_token)
    info = client.introspect_token(refreshed.access_token)
    check(info == {"active": False}, "introspection after revocation: inactive")

    bound = client.client_credentials(dpop=True)
    check(isinstance(bound, DPoPToken) and bound.token_type == "DPoP",
          "client_credentials with DPoP gives a DPoP-bound token")
    response = requests.get(me, auth=bound, timeout=10)
    check(response.status_code == 200, f"/user/me with the DPoP token and a proof: {response.status_code}")
    check(response.json()["auth_method"] == "dpop", "/user/me saw DPoP authentication")
    response = requests.get(me, headers={"Authorization": f"Bearer {bound.access_token}"}, timeout=10)
    check(response.status_code == 401, "the bound token is refused as Bearer")

    again = client.refresh_token(bound)
    check(again.token_type == "DPoP" and again.refresh_token == bound.refresh_token,
          "a DPoP-bound refresh keeps its refresh token")
    response = requests.get(me, auth=again, timeout=10)
    check(response.status_code == 200, "the refreshed DPoP token works")

    jwks = JwkSet(requests.get(f"{issuer}/.well-known/jwks.json", timeout=10).json())
    protected_resources(client, issuer, token, me, jwks)
    for alg, params in (("ES256", {}), ("EdDSA", {"crv": "Ed25519"})):
        key_pair_client(issuer, token, me, user_id, alg, params, jwks)
    delegation(client, issuer, token, me, user_id, jwks)
    workload_identity(issuer, token, me, jwks)


ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def new_client(issuer, admin_token, role, name):
    """A user with `role` and an API key of its own, through the admin API."""
    response = requests.post(f"{issuer}/users", auth=admin_token, timeout=10,
                             json={"email": f"{name}-{uuid.uuid4().hex[:8]}@interop.test", "role": role})
    check(response.status_code == 201, f"{name}: user created: {response.status_code}")
    user = response.json()["user_id"]
    response = requests.post(f"{issuer}/api_keys", auth=admin_token, timeout=10,
                             json={"name": name, "user_id": user})
    check(response.status_code == 201, f"{name}: key created: {response.status_code}")
    created = response.json()
    return user, created["api_key_id"], created["api_key"]


def delegation(client, issuer, admin_token, me, user_id, jwks):
    """RFC 8693 with requests-oauth2client's token_exchange: person → assistant → coder."""
    discovery = f"{issuer}/.well-known/oauth-authorization-server"
    meta = requests.get(discovery, timeout=10).json()
    check("urn:ietf:params:oauth:grant-type:token-exchange" in meta["grant_types_supported"]
          and "urn:ietf:params:oauth:grant-type:jwt-bearer" in meta["grant_types_supported"],
          "metadata lists token exchange and the JWT bearer grant")
    agents = []
    for name in ("assistant", "coder"):
        agent_user, key_id, secret = new_client(issuer, admin_token, "member", name)
        agents.append((agent_user, OAuth2Client.from_discovery_endpoint(
            discovery, issuer=issuer, auth=(key_id, secret), testing=True)))
    (assistant, assistant_client), (coder, coder_client) = agents

    person = client.client_credentials()
    one = assistant_client.token_exchange(subject_token=person.access_token,
                                          subject_token_type=ACCESS_TOKEN,
                                          requested_token_type=ACCESS_TOKEN)
    check(one.kwargs.get("issued_token_type") == ACCESS_TOKEN and one.refresh_token is None,
          "token_exchange: issued_token_type, no refresh token")
    claims = claims_of(one, jwks, issuer)
    check(claims["sub"] == user_id and claims["act"] == {"sub": assistant},
          "hop 1: sub is the person, act the assistant")
    two = coder_client.token_exchange(subject_token=one, subject_token_type=ACCESS_TOKEN,
                                      scope="keys:read")
    claims = claims_of(two, jwks, issuer)
    chain = {"sub": coder, "act": {"sub": assistant}}
    check(claims["act"] == chain and claims["scope"] == "keys:read" and claims["exp"] <= one.expires_at.timestamp() + 1,
          "hop 2: act nests the chain, scope narrowed, exp capped")
    response = requests.get(me, auth=two, timeout=10)
    check(response.status_code == 200 and response.json()["act"] == chain,
          "/user/me shows the nested act")
    info = coder_client.introspect_token(two.access_token)
    check(info["active"] is True and info["act"] == chain, "introspection shows the nested act")
    try:
        coder_client.token_exchange(subject_token=two, subject_token_type=ACCESS_TOKEN,
                                    scope="keys:write")
        refused = False
    except InvalidScope:
        refused = True
    check(refused, "an exchange cannot widen the scope (invalid_scope)")
    bound = assistant_client.token_exchange(subject_token=person.access_token,
                                            subject_token_type=ACCESS_TOKEN, dpop=True)
    check(isinstance(bound, DPoPToken) and claims_of(bound, jwks, issuer).get("cnf"),
          "token_exchange with DPoP gives a bound token")
    client.revoke_access_token(person.access_token)
    try:
        coder_client.token_exchange(subject_token=person.access_token, subject_token_type=ACCESS_TOKEN)
        refused = False
    except InvalidGrant:
        refused = True
    check(refused, "a revoked subject token is refused (invalid_grant)")


def workload_identity(issuer, admin_token, me, jwks):
    """RFC 7523 §2.1 with requests-oauth2client's jwt_bearer: a workload's token from a
    trusted issuer (keys made by jwskate, registered inline) gets a keygate token."""
    idp = "https://token.actions.githubusercontent.example"
    audience = issuer
    private = Jwk.generate(alg="ES256").with_kid_thumbprint()
    response = requests.post(f"{issuer}/trusted_issuers", auth=admin_token, timeout=10, json={
        "issuer": idp, "jwks": {"keys": [dict(private.public_jwk())]}, "audience": audience,
        "subject_claim": "sub", "algorithms": ["ES256"], "allow_jwt_bearer": True})
    check(response.status_code == 201 and response.json()["allow_jwt_bearer"] is True,
          f"trusted issuer with allow_jwt_bearer: {response.status_code}")
    service, _, _ = new_client(issuer, admin_token, "service", "deployer")
    subject = "repo:example/app:ref:refs/heads/main"
    response = requests.patch(f"{issuer}/users/{service}", auth=admin_token, timeout=10,
                              json={"external_subject": subject})
    check(response.status_code == 200, "the service user carries the workload's subject")
    now = int(time.time())
    assertion = SignedJwt.sign({"iss": idp, "aud": audience, "sub": subject, "iat": now,
                                "exp": now + 300, "jti": uuid.uuid4().hex}, private, alg="ES256")
    workload = OAuth2Client(token_endpoint=f"{issuer}/oauth/token", client_id="workload",
                            testing=True)
    token = workload.jwt_bearer(assertion=str(assertion))
    claims = claims_of(token, jwks, issuer)
    check(claims["sub"] == service and token.refresh_token is None,
          "jwt_bearer: a token for the mapped service user, no refresh token")
    response = requests.get(me, auth=token, timeout=10)
    check(response.status_code == 200 and response.json()["user_id"] == service,
          "/user/me with the workload's token")
    try:
        workload.jwt_bearer(assertion=str(assertion))
        refused = False
    except InvalidGrant:
        refused = True
    check(refused, "a replayed assertion (same jti) is refused (invalid_grant)")


def claims_of(token, jwks, issuer):
    """The access token's claims, once its signature verifies with keygate's JWKS."""
    jwt = SignedJwt(token.access_token)
    check(jwt.verify_signature(jwks, algs=["ES256", "EdDSA"]) and jwt.typ == "at+jwt"
          and jwt.claims["iss"] == issuer, "the token verifies with keygate's JWKS (typ at+jwt, iss)")
    return jwt.claims


def protected_resources(client, issuer, admin_token, me, jwks):
    """RFC 8707: `resource` on client_credentials and refresh_token; `aud` is the resource."""
    for uri, scopes in ((MCP, ["mcp:tools", "files:read"]), (FILES, ["files:read"])):
        response = requests.post(f"{issuer}/resources", auth=admin_token, timeout=10,
                                 json={"uri": uri, "name": uri, "scopes": scopes})
        check(response.status_code == 201, f"resource {uri} registered: {response.status_code}")

    token = client.client_credentials(scope="mcp:tools", resource=MCP)
    claims = claims_of(token, jwks, issuer)
    check(claims["aud"] == MCP and claims["scope"] == "mcp:tools" and token.scope == "mcp:tools",
          "client_credentials with resource: aud is the resource, scope narrowed to mcp:tools")
    check(requests.get(me, auth=token, timeout=10).status_code == 401,
          "keygate's own endpoints refuse a token for a resource")
    info = client.introspect_token(token.access_token)
    check(info["active"] is True and info["aud"] == MCP, "introspection reports the resource as aud")

    both = client.client_credentials(resource=[MCP, FILES])
    claims = claims_of(both, jwks, issuer)
    check(sorted(claims["aud"]) == sorted([MCP, FILES])
          and sorted(claims["scope"].split()) == ["files:read", "mcp:tools"],
          "two resources: aud is both, scope every scope they define")
    narrowed = client.refresh_token(both, resource=FILES)
    claims = claims_of(narrowed, jwks, issuer)
    check(claims["aud"] == FILES and claims["scope"] == "files:read",
          "a refresh naming one of the session's resources narrows aud and scope")

    for label, call in (
        ("a refresh cannot add a resource", lambda: client.refresh_token(token, resource=FILES)),
        ("an unregistered resource", lambda: client.client_credentials(resource="https://unknown.example.com/")),
        ("a resource with a fragment", lambda: client.client_credentials(resource=f"{MCP}#tools")),
        ("a relative resource", lambda: client.client_credentials(resource="/mcp")),
    ):
        try:
            call()
            refused = False
        except InvalidTarget:
            refused = True
        check(refused, f"{label}: invalid_target")


def key_pair_client(issuer, admin_token, me, user_id, alg, params, jwks):
    """A secretless key-pair client: registered with its public key only, then every
    endpoint authenticated by requests-oauth2client's PrivateKeyJwt (aud = the endpoint)."""
    private = Jwk.generate(alg=alg, **params).with_kid_thumbprint()
    response = requests.post(
        f"{issuer}/api_keys",
        json={"name": f"interop {alg}", "public_jwks": {"keys": [dict(private.public_jwk())]}},
        auth=admin_token,
        timeout=10,
    )
    check(response.status_code == 201, f"{alg}: key-pair client created: {response.status_code}")
    created = response.json()
    check("api_key" not in created and created["client_auth"] == "private_key_jwt",
          f"{alg}: the key-pair client has no secret")
    client_id = created["api_key_id"]
    client = OAuth2Client.from_discovery_endpoint(
        f"{issuer}/.well-known/oauth-authorization-server",
        issuer=issuer,
        auth=PrivateKeyJwt(client_id, private),
        testing=True,
    )
    token = client.client_credentials()
    check(token.token_type.lower() == "bearer", f"{alg}: private_key_jwt client_credentials")
    response = requests.get(me, auth=token, timeout=10)
    check(response.status_code == 200 and response.json()["user_id"] == user_id,
          f"{alg}: /user/me with the key-pair client's token")
    refreshed = client.refresh_token(token)
    check(refreshed.refresh_token != token.refresh_token, f"{alg}: refresh with private_key_jwt")
    info = client.introspect_token(refreshed.access_token)
    check(info["active"] is True and info["client_id"] == client_id,
          f"{alg}: introspection with private_key_jwt")
    client.revoke_access_token(refreshed.access_token)
    info = client.introspect_token(refreshed.access_token)
    check(info == {"active": False}, f"{alg}: revocation with private_key_jwt")
    bound = client.client_credentials(dpop=True)
    check(isinstance(bound, DPoPToken), f"{alg}: private_key_jwt with DPoP gives a bound token")
    check(requests.get(me, auth=bound, timeout=10).status_code == 200,
          f"{alg}: the bound token works")
    for_mcp = client.client_credentials(scope="mcp:tools", resource=MCP)
    check(claims_of(for_mcp, jwks, issuer)["aud"] == MCP,
          f"{alg}: private_key_jwt with resource: aud is the resource")
    impostor = OAuth2Client(
        token_endpoint=client.token_endpoint,
        auth=PrivateKeyJwt(client_id, Jwk.generate(alg=alg, kid=private.kid, **params)),
        testing=True,
    )
    try:
        impostor.client_credentials()
        refused = False
    except InvalidClient:
        refused = True
    check(refused, f"{alg}: an assertion signed by another key is refused (invalid_client)")


if __name__ == "__main__":
    main()
