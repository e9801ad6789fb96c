"""schemathesis hooks for keygate: authenticate every generated request for real.

Protected endpoints get a Bearer token from signin_with_api_key with the bootstrap API key,
fetched again every second, so a case that ends the session (DELETE /sessions/{id}) does
not leave the rest of the run unauthenticated. The OAuth endpoints get HTTP Basic client
authentication (client_id = api_key_id, client_secret = api_key). The credentials come from
the environment (KEYGATE_URL, KEYGATE_API_KEY_ID, KEYGATE_API_KEY, KEYGATE_USER_ID).
"""

import base64
import os

import requests
import schemathesis

URL = os.environ["KEYGATE_URL"]
KEY_ID = os.environ["KEYGATE_API_KEY_ID"]
KEY = os.environ["KEYGATE_API_KEY"]
USER_ID = os.environ["KEYGATE_USER_ID"]
CLIENT = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY}".encode()).decode()


@schemathesis.auth(refresh_interval=1)
class KeygateAuth:
    def get(self, case, context):
        response = requests.post(
            f"{URL}/v1/default/user/signin_with_api_key",
            headers={"x-api-key": KEY, "x-api-key-id": KEY_ID, "x-user-id": USER_ID},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["id_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        if case.operation.path.startswith("/v1/{org}/oauth/"):
            case.headers["Authorization"] = CLIENT
        elif case.operation.path.endswith("/signin_with_api_key"):
            pass
        else:
            case.headers["Authorization"] = f"Bearer {data}"
