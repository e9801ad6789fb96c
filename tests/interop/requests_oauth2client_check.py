"""Drives keygate with a third-party OAuth client library (requests-oauth2client):
discovery, client_credentials (Bearer and DPoP), calls to a protected endpoint, refresh,
introspection and revocation. Exits non-zero at the first mismatch.

usage: requests_oauth2client_check.py BASE_URL ORG CLIENT_ID CLIENT_SECRET USER_ID
"""

import sys

import requests
from requests_oauth2client import DPoPToken, OAuth2Client


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


if __name__ == "__main__":
    main()
