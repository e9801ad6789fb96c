//! One request through `keygate dpop proxy`: which proof it gets (RFC 9449 §4, §7.1), the
//! one retry on `use_dpop_nonce` (§8, §9), and the upstream's answer passed back unchanged
//! (status, headers that are not hop-by-hop, body). It must not log a token, a proof or a
//! query string.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{MAX_BODY, Shared};

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy sets itself: never copied
/// from one side to the other.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// How the request presents its access token, and so which proof it gets.
#[derive(Debug, PartialEq, Eq)]
enum Presentation {
    /// The client sent its own `DPoP` header: forwarded untouched.
    OwnProof,
    /// `Authorization: DPoP <token>`, or `Bearer <token>` of a token bound to this key:
    /// sent as `DPoP <token>` with a proof carrying `ath`.
    Bound(String),
    /// No token (sign-in, the token endpoint: the proof binds what they issue), Basic, or a
    /// token this key is not bound to: a proof without `ath`, `Authorization` unchanged.
    Unbound,
}

/// The `cnf.jkt` of a JWT's payload, read without verifying anything: only to decide how
/// to present the token (the server verifies it).
fn unverified_cnf_jkt(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let claims: Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    Some(claims.pointer("/cnf/jkt")?.as_str()?.to_owned())
}

fn presentation(req: &HttpRequest, thumbprint: &str) -> Presentation {
    if req.headers().contains_key("dpop") {
        return Presentation::OwnProof;
    }
    let Some(authorization) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Presentation::Unbound;
    };
    let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
    let token = token.trim();
    if token.is_empty() {
        return Presentation::Unbound;
    }
    if scheme.eq_ignore_ascii_case("dpop") {
        return Presentation::Bound(token.to_owned());
    }
    if scheme.eq_ignore_ascii_case("bearer")
        && unverified_cnf_jkt(token).is_some_and(|jkt| jkt == thumbprint)
    {
        return Presentation::Bound(token.to_owned());
    }
    Presentation::Unbound
}

/// Whether the upstream asked for a nonce: RFC 9449 §8 (`{"error": "use_dpop_nonce"}` at
/// the token endpoint; keygate's sign-in says it as `{"error": {"code": …}}`) or §9
/// (`WWW-Authenticate: DPoP error="use_dpop_nonce"` at a resource).
fn asks_for_nonce(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> bool {
    if !matches!(status.as_u16(), 400 | 401) {
        return false;
    }
    let challenge = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("use_dpop_nonce"));
    if challenge {
        return true;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    body.get("error").and_then(Value::as_str) == Some("use_dpop_nonce")
        || body.pointer("/error/code").and_then(Value::as_str) == Some("use_dpop_nonce")
}

/// A JSON error of the proxy itself, in keygate's error shape.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

/// Reads the request body, up to [`MAX_BODY`].
async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, HttpResponse> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is larger than the proxy forwards (1 MiB)",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The CORS headers for a browser page of an allowed origin (Scalar at keygate's `/docs`).
fn cors(response: &mut HttpResponse, origin: Option<&str>) {
    let Some(origin) = origin else { return };
    let Ok(value) = header::HeaderValue::from_str(origin) else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static(
            "DPoP-Nonce, WWW-Authenticate, X-Request-Id, Retry-After, Location",
        ),
    );
    headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
}

/// Every request the proxy receives.
pub(super) async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(origin) = &origin {
        if !shared.allowed_origins.iter().any(|o| o == origin) {
            (shared.log)(&format!(
                "{method} {path} 403 (refused: a page of {origin})"
            ));
            return error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "keygate dpop proxy signs only for keygate's own pages (Origin refused)",
            );
        }
        if method == "OPTIONS"
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut response = HttpResponse::NoContent().finish();
            cors(&mut response, Some(origin));
            let headers = response.headers_mut();
            for (request, allow) in [
                (
                    header::ACCESS_CONTROL_REQUEST_METHOD,
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                ),
                (
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                ),
            ] {
                if let Some(value) = req.headers().get(&request) {
                    headers.insert(allow, value.clone());
                }
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                header::HeaderValue::from_static("600"),
            );
            (shared.log)(&format!("{method} {path} 204 (CORS preflight)"));
            return response;
        }
    }
    let body = match read_body(payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let presentation = presentation(&req, &shared.thumbprint);
    let (mut response, note) = match exchange(&req, &shared, &presentation, body).await {
        Ok(answer) => answer,
        Err(message) => {
            (shared.log)(&format!("{method} {path} 502 (upstream unreachable)"));
            return error(StatusCode::BAD_GATEWAY, "bad_gateway", &message);
        }
    };
    cors(&mut response, origin.as_deref());
    (shared.log)(&format!(
        "{method} {path} {} ({note})",
        response.status().as_u16()
    ));
    response
}

/// Sends the request upstream (twice when it asks for a nonce) and builds the answer.
async fn exchange(
    req: &HttpRequest,
    shared: &Shared,
    presentation: &Presentation,
    body: Vec<u8>,
) -> Result<(HttpResponse, String), String> {
    let path = req.uri().path();
    let mut target = shared.upstream.clone();
    target.set_path(&format!(
        "{}{path}",
        shared.upstream.path().trim_end_matches('/')
    ));
    target.set_query(req.uri().query());
    let mut htu = shared.public_url.clone();
    htu.set_path(&format!(
        "{}{path}",
        shared.public_url.path().trim_end_matches('/')
    ));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|e| format!("bad method: {e}"))?;

    let nonce = shared.nonce.lock().map(|n| n.clone()).unwrap_or_default();
    let first = send(
        req,
        shared,
        presentation,
        &method,
        &target,
        &htu,
        &body,
        nonce.as_deref(),
    )
    .await?;
    let mut note = match presentation {
        Presentation::OwnProof => "the client's own proof".to_owned(),
        Presentation::Bound(_) => "DPoP proof with ath".to_owned(),
        Presentation::Unbound => "DPoP proof".to_owned(),
    };
    let (status, headers, bytes) = first;
    remember_nonce(shared, &headers);
    let retry_nonce = headers
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|_| {
            *presentation != Presentation::OwnProof && asks_for_nonce(status, &headers, &bytes)
        });
    let (status, headers, bytes) = match retry_nonce {
        Some(new_nonce) => {
            note.push_str(", retried once with the server's nonce");
            let second = send(
                req,
                shared,
                presentation,
                &method,
                &target,
                &htu,
                &body,
                Some(&new_nonce),
            )
            .await?;
            remember_nonce(shared, &second.1);
            second
        }
        None => (status, headers, bytes),
    };

    let mut response = HttpResponse::build(
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    for (name, value) in &headers {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
    Ok((response.body(bytes), note))
}

fn remember_nonce(shared: &Shared, headers: &reqwest::header::HeaderMap) {
    if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok())
        && let Ok(mut slot) = shared.nonce.lock()
    {
        *slot = Some(nonce.to_owned());
    }
}

type Answer = (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>);

/// One upstream request with a fresh proof (unless the client brought its own).
#[allow(clippy::too_many_arguments)]
async fn send(
    req: &HttpRequest,
    shared: &Shared,
    presentation: &Presentation,
    method: &reqwest::Method,
    target: &url::Url,
    htu: &url::Url,
    body: &[u8],
    nonce: Option<&str>,
) -> Result<Answer, String> {
    let mut request = shared.client.request(method.clone(), target.clone());
    for (name, value) in req.headers() {
        let name = name.as_str();
        if HOP_BY_HOP.contains(&name) || name == "host" {
            continue;
        }
        if name == "authorization" && matches!(presentation, Presentation::Bound(_)) {
            continue;
        }
        request = request.header(name, value.as_bytes());
    }
    let access_token = match presentation {
        Presentation::Bound(token) => {
            request = request.header("authorization", format!("DPoP {token}"));
            Some(token.as_str())
        }
        _ => None,
    };
    if *presentation != Presentation::OwnProof {
        let proof = shared
            .key
            .proof(
                method.as_str(),
                htu.as_str(),
                access_token,
                nonce,
                shared.clock.now(),
            )
            .map_err(|e| format!("cannot sign a DPoP proof: {e}"))?;
        request = request.header("dpop", proof);
    }
    let response = request
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("keygate dpop proxy cannot reach the upstream: {e}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the upstream's answer broke off: {e}"))?;
    Ok((status, headers, bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        format!("e30.{}.c2ln", B64.encode(claims.to_string()))
    }

    #[test]
    fn only_tokens_bound_to_this_key_are_rewritten() {
        let bound = jwt(&json!({"cnf": {"jkt": "me"}}));
        let other = jwt(&json!({"cnf": {"jkt": "someone-else"}}));
        let plain = jwt(&json!({"sub": "usr_1"}));
        let cases = [
            (vec![], Presentation::Unbound),
            (
                vec![("authorization", format!("Bearer {bound}"))],
                Presentation::Bound(bound.clone()),
            ),
            (
                vec![("authorization", format!("bearer  {bound}"))],
                Presentation::Bound(bound.clone()),
            ),
            (
                vec![("authorization", format!("DPoP {plain}"))],
                Presentation::Bound(plain.clone()),
            ),
            (
                vec![("authorization", format!("Bearer {other}"))],
                Presentation::Unbound,
            ),
            (
                vec![("authorization", format!("Bearer {plain}"))],
                Presentation::Unbound,
            ),
            (
                vec![("authorization", "Bearer not.a-jwt".to_owned())],
                Presentation::Unbound,
            ),
            (
                vec![("authorization", "Basic a2V5OnNlY3JldA==".to_owned())],
                Presentation::Unbound,
            ),
            (
                vec![("authorization", "Bearer".to_owned())],
                Presentation::Unbound,
            ),
            (
                vec![
                    ("authorization", format!("Bearer {bound}")),
                    ("dpop", "x.y.z".to_owned()),
                ],
                Presentation::OwnProof,
            ),
        ];
        for (headers, expected) in cases {
            let mut req = actix_web::test::TestRequest::default();
            for (name, value) in &headers {
                req = req.insert_header((*name, value.as_str()));
            }
            assert_eq!(
                presentation(&req.to_http_request(), "me"),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn both_forms_of_use_dpop_nonce_are_recognised() {
        use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
        let none = HeaderMap::new();
        let mut challenge = HeaderMap::new();
        challenge.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="x""#),
        );
        let bad = reqwest::StatusCode::BAD_REQUEST;
        let unauthorized = reqwest::StatusCode::UNAUTHORIZED;
        assert!(asks_for_nonce(bad, &none, br#"{"error":"use_dpop_nonce"}"#));
        assert!(asks_for_nonce(
            bad,
            &none,
            br#"{"error":{"code":"use_dpop_nonce","message":"m"}}"#
        ));
        assert!(asks_for_nonce(unauthorized, &challenge, b""));
        assert!(!asks_for_nonce(
            bad,
            &none,
            br#"{"error":"invalid_dpop_proof"}"#
        ));
        assert!(!asks_for_nonce(
            reqwest::StatusCode::OK,
            &challenge,
            br#"{"error":"use_dpop_nonce"}"#
        ));
        assert!(!asks_for_nonce(unauthorized, &none, b"not json"));
    }
}
