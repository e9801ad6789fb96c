"""Drives keygate with a third-party OAuth client library (requests-oauth2client):
discovery, client_credentials (Bearer and DPoP), calls to a protected endpoint, refresh,
introspection and revocation, with a client secret and with private_key_jwt (a key-pair
client registered with public_jwks, keys made by jwskate). Exits non-zero at the first
mismatch.

usage: requests_oauth2client_check.py BASE_URL ORG CLIENT_ID CLIENT_SECRET USER_ID
"""

import sys

import requests
from jwskate import Jwk
from requests_oauth2client import DPoPToken, InvalidClient, OAuth2Client, PrivateKeyJwt


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

    for alg, params in (("ES256", {}), ("EdDSA", {"crv": "Ed25519"})):
        key_pair_client(issuer, token, me, user_id, alg, params)


def key_pair_client(issuer, admin_token, me, user_id, alg, params):
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
