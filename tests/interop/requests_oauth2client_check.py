"""Drives keygate with a third-party OAuth client library (requests-oauth2client):
discovery, client_credentials (Bearer and DPoP), calls to a protected endpoint, refresh,
introspection and revocation, with a client secret and with private_key_jwt (a key-pair
client registered with public_jwks, keys made by jwskate), and tokens for protected
resources (RFC 8707 `resource`: `aud`, scopes, refresh narrowing, invalid_target). Exits
non-zero at the first mismatch.

usage: requests_oauth2client_check.py BASE_URL ORG CLIENT_ID CLIENT_SECRET USER_ID
"""

import sys

import requests
from jwskate import Jwk, JwkSet, SignedJwt
from requests_oauth2client import (
    DPoPToken,
    InvalidClient,
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
