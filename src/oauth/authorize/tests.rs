//! The authorization request's checks that need no database: parameters, PKCE, `dpop_jkt`,
//! `prompt`, scope syntax; redirects that keep the registered URI's query; consents.

use super::code::*;
use super::consent::*;
use super::request::*;
use super::*;
use crate::ids::random_base62;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "cli_x"),
        ("redirect_uri", "https://app.example/cb"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ]
}

/// The error code and description of a refused request.
type Refusal = (String, String);

fn checked(list: &[(&str, &str)]) -> Result<(), Refusal> {
    check(&Params::new(&pairs(list))).map_err(|d| (d.code.to_owned(), d.description))
}

#[test]
fn a_well_formed_request_passes_and_each_violation_has_its_code() {
    assert!(checked(&good()).is_ok());
    let with = |extra: &[(&'static str, &'static str)], without: &[&str]| {
        let mut list: Vec<_> = good()
            .into_iter()
            .filter(|(k, _)| !without.contains(k))
            .collect();
        list.extend_from_slice(extra);
        checked(&list)
    };
    let cases: Vec<(&str, Result<(), Refusal>, &str)> = vec![
        (
            "no response_type",
            with(&[], &["response_type"]),
            "invalid_request",
        ),
        (
            "response_type token",
            with(&[("response_type", "token")], &["response_type"]),
            "unsupported_response_type",
        ),
        (
            "no code_challenge",
            with(&[], &["code_challenge"]),
            "invalid_request",
        ),
        (
            "plain",
            with(
                &[("code_challenge_method", "plain")],
                &["code_challenge_method"],
            ),
            "invalid_request",
        ),
        (
            "no method (plain by default)",
            with(&[], &["code_challenge_method"]),
            "invalid_request",
        ),
        (
            "state twice",
            with(&[("state", "again")], &[]),
            "invalid_request",
        ),
        (
            "scope twice",
            with(&[("scope", "a"), ("scope", "b")], &[]),
            "invalid_request",
        ),
        (
            "dpop_jkt malformed",
            with(&[("dpop_jkt", "short")], &[]),
            "invalid_request",
        ),
        (
            "prompt none",
            with(&[("prompt", "none")], &[]),
            "invalid_request",
        ),
        (
            "scope with a quote",
            with(&[("scope", "a\"b")], &[]),
            "invalid_scope",
        ),
    ];
    for (name, result, code) in cases {
        let (got, description) = result.expect_err(name);
        assert_eq!(got, code, "{name}: {description}");
        assert!(!description.is_empty(), "{name}");
    }
    // Repeatable and optional parameters.
    assert!(
        with(
            &[
                ("resource", "https://a.example/"),
                ("resource", "https://b.example/")
            ],
            &[]
        )
        .is_ok()
    );
    assert!(
        with(
            &[("prompt", "consent"), ("scope", "keys:read mcp:tools")],
            &[]
        )
        .is_ok()
    );
    assert!(
        with(
            &[("dpop_jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")],
            &[]
        )
        .is_ok()
    );
    // An empty value is no value (RFC 6749 §3.1).
    assert!(with(&[("state", "")], &[]).is_ok());
}

#[test]
fn the_consent_forms_fields_are_not_the_requests() {
    let mut list = good();
    list.push(("csrf", "token"));
    list.push(("decision", "approve"));
    list.push(("resource", "https://a.example/"));
    list.push(("resource", "https://b.example/"));
    let request = Params::new(&pairs(&list)).request();
    assert!(request.iter().all(|(k, _)| k != "csrf" && k != "decision"));
    assert_eq!(request.iter().filter(|(k, _)| k == "resource").count(), 2);
    assert_eq!(request.len(), good().len() + 2);
}

#[test]
fn redirects_keep_the_registered_query_and_carry_state_and_iss() {
    let back = Back {
        redirect_uri: "https://app.example/cb?tenant=7",
        state: Some("s t&x"),
        iss: "https://auth.example/v1/acme".into(),
    };
    let Outcome::Redirect(to) = back.with(&[("code", "ac_1")]) else {
        panic!("a redirect");
    };
    let url = url::Url::parse(&to).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        pairs(&[
            ("tenant", "7"),
            ("code", "ac_1"),
            ("state", "s t&x"),
            ("iss", "https://auth.example/v1/acme"),
        ])
    );
    let Outcome::Redirect(to) = Back {
        redirect_uri: "com.example.app:/cb",
        state: None,
        iss: "https://auth.example/v1/acme".into(),
    }
    .error(Denied::new("access_denied", "no")) else {
        panic!("a redirect");
    };
    assert!(
        to.starts_with("com.example.app:/cb?error=access_denied&error_description=no&iss="),
        "{to}"
    );
    assert!(!to.contains("state="));
}

#[test]
fn a_consent_covers_what_it_holds_and_nothing_more() {
    let consent = entity::consent::Model {
        id: "cns_1".into(),
        org_id: "org_1".into(),
        user_id: "usr_1".into(),
        client_id: "cli_1".into(),
        client_name: "One".into(),
        scope: "files:read mcp:tools".into(),
        resources: "https://a.example/mcp".into(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    };
    let grant = |scope: &str, uris: &[&str]| Grant {
        scope: scope.into(),
        target: (!uris.is_empty()).then(|| Target {
            uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            scope: scope.into(),
            access_ttl: None,
        }),
    };
    assert!(covers(
        &consent,
        &grant("mcp:tools", &["https://a.example/mcp"])
    ));
    assert!(covers(&consent, &grant("", &[])));
    assert!(!covers(
        &consent,
        &grant("mcp:admin", &["https://a.example/mcp"])
    ));
    assert!(!covers(
        &consent,
        &grant("mcp:tools", &["https://b.example/mcp"])
    ));
    assert_eq!(union("b a", ["c", "a"].into_iter()), "a b c");
    assert_eq!(union("", std::iter::empty()), "");
}

#[test]
fn codes_have_one_shape() {
    assert!(crate::types::scope_description("keys:read").is_some());
    assert!(crate::types::scope_description("mcp:tools").is_none());
    assert!(is_code(&format!("ac_{}", random_base62(CODE_RANDOM_LEN))));
    let wrong_prefix = format!("rt_{}", "a".repeat(43));
    let bad_char = format!("ac_{}!", "a".repeat(42));
    let too_long = format!("ac_{}", "a".repeat(44));
    for bad in ["", "ac_", "ac_short", &wrong_prefix, &bad_char, &too_long] {
        assert!(!is_code(bad), "{bad}");
    }
}

#[test]
fn a_redirect_uri_becomes_the_csp_source_the_consent_form_may_reach() {
    assert_eq!(
        csp_source("https://App.example:8443/cb?x=1").as_deref(),
        Some("https://app.example:8443")
    );
    assert_eq!(
        csp_source("http://127.0.0.1:5173/callback").as_deref(),
        Some("http://127.0.0.1:5173")
    );
    assert_eq!(
        csp_source("com.example.app:/cb").as_deref(),
        Some("com.example.app:")
    );
    assert_eq!(csp_source("not a uri"), None);
}
