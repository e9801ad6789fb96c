//! Browser clients authenticating at the token endpoint, through `oauth::client::identify`
//! (what the authorization-code and device grants call): a public client sends its
//! `client_id` only; a confidential one its secret (Basic or form, throttled when wrong);
//! a `private_key_jwt` one a single-use assertion, checked by the same code as key-pair API
//! keys'.

use reqwest::StatusCode;
use serde_json::json;

use super::{basic, identified, identify, owner_token, registered};
use crate::client_assertion::{self, ASSERTION_TYPE, Signer, claims};
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_public_client_sends_its_client_id_only() {
    let app = spawn_app().await;
    let id = registered(&app, "none").await.str("client_id");
    assert_eq!(
        identified(&app, None, &[("client_id", &id)]).await,
        Ok(id.clone())
    );

    // Anything more is refused: a public client has no secret to send.
    let some_secret = "kgcs_0000000000000000000000000000000000000000000000";
    for (authorization, form, case) in [
        (
            None,
            vec![("client_id", id.as_str()), ("client_secret", some_secret)],
            "a form secret",
        ),
        (Some(basic(&id, some_secret)), vec![], "a Basic secret"),
        (Some(basic(&id, "")), vec![], "Basic with an empty secret"),
        (
            None,
            vec![
                ("client_id", id.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", "e30.e30.AA"),
            ],
            "an assertion",
        ),
    ] {
        let err = identify(&app, authorization.as_deref(), &form)
            .await
            .err()
            .expect(case);
        assert_eq!(err.code.as_str(), "invalid_client", "{case}");
        if case != "an assertion" {
            assert!(
                err.description.contains("public client"),
                "{case}: {}",
                err.description
            );
        }
    }
    // Unknown and malformed client ids, and no client at all.
    for unknown in ["cli_000000000000000000000000", "cli_x", "someone", "key_x"] {
        assert_eq!(
            identified(&app, None, &[("client_id", unknown)]).await,
            Err("invalid_client".into()),
            "{unknown}"
        );
    }
    assert_eq!(
        identified(&app, None, &[]).await,
        Err("invalid_client".into())
    );
}

#[tokio::test]
async fn a_confidential_client_proves_itself_with_its_secret_only() {
    let app = spawn_app().await;
    let created = registered(&app, "client_secret_basic").await;
    let (id, secret) = (created.str("client_id"), created.str("client_secret"));
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id.clone())
    );
    assert_eq!(
        identified(
            &app,
            None,
            &[("client_id", &id), ("client_secret", &secret)]
        )
        .await,
        Ok(id.clone())
    );
    let mut wrong = secret.clone().into_bytes();
    let last = wrong.len() - 8;
    wrong[last] = if wrong[last] == b'a' { b'b' } else { b'a' };
    let wrong = String::from_utf8(wrong).unwrap();
    let fresh = keygate::clients::secret::ClientSecret::generate();
    for (authorization, form, case) in [
        (None, vec![("client_id", id.as_str())], "no secret"),
        (
            Some(basic(&id, fresh.expose())),
            vec![],
            "a well-formed wrong secret",
        ),
        (Some(basic(&id, &wrong)), vec![], "a mistyped secret"),
        (
            Some(basic(&id, &secret[..secret.len() - 1])),
            vec![],
            "a truncated secret",
        ),
        (
            Some(basic(&id, &app.owner.api_key)),
            vec![],
            "an API key as the secret",
        ),
    ] {
        let err = identify(&app, authorization.as_deref(), &form)
            .await
            .err()
            .expect(case);
        assert_eq!(err.code.as_str(), "invalid_client", "{case}");
        assert!(!err.description.contains(&secret), "{case}: never echoed");
        // A failed Basic authentication asks for Basic again (RFC 6749 §5.2).
        assert_eq!(err.basic, authorization.is_some(), "{case}");
    }
    // Another organization's client with its right secret: unknown here.
    let acme = app.create_org("acme").await;
    let acme_org = super::org(&app, "acme").await;
    let created = keygate::admin::clients::register(
        &app.state.storage,
        &app.state.pepper,
        app.clock.as_ref(),
        &acme_org,
        keygate::admin::clients::NewClient {
            name: "acme agent".into(),
            redirect_uris: vec!["https://acme.example/cb".into()],
            auth: "client_secret_basic".into(),
            jwks: None,
            scope: None,
        },
    )
    .await
    .unwrap();
    let acme_secret = created.secret.unwrap();
    assert_eq!(
        identified(
            &app,
            Some(&basic(&created.client.id, acme_secret.expose())),
            &[]
        )
        .await,
        Err("invalid_client".into())
    );
    let _ = acme;
}

#[tokio::test]
async fn wrong_secrets_are_throttled_per_client_and_malformed_ones_do_not_count() {
    let app = spawn_app_with(|s| {
        s.limits.failed_auth_per_key_per_minute = 3;
    })
    .await;
    let created = registered(&app, "client_secret_basic").await;
    let (id, secret) = (created.str("client_id"), created.str("client_secret"));
    // Malformed secrets cannot be guesses: as many as you like.
    for _ in 0..5 {
        assert_eq!(
            identified(&app, Some(&basic(&id, "not-a-secret")), &[]).await,
            Err("invalid_client".into())
        );
    }
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id.clone())
    );
    for _ in 0..3 {
        let guess = keygate::clients::secret::ClientSecret::generate();
        assert_eq!(
            identified(&app, Some(&basic(&id, guess.expose())), &[]).await,
            Err("invalid_client".into())
        );
    }
    // Now even the right secret waits, with Retry-After.
    let err = identify(&app, Some(&basic(&id, &secret)), &[])
        .await
        .err()
        .unwrap();
    assert_eq!(err.code.as_str(), "rate_limited");
    assert!(
        err.retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{err:?}"
    );
    // Another client is not affected; a minute later this one is free again.
    let other = registered(&app, "client_secret_basic").await;
    assert_eq!(
        identified(
            &app,
            Some(&basic(&other.str("client_id"), &other.str("client_secret"))),
            &[]
        )
        .await,
        Ok(other.str("client_id"))
    );
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id)
    );
}

#[tokio::test]
async fn a_private_key_jwt_client_proves_itself_once_per_assertion() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let signer = Signer::es256();
    let reply = super::create(
        &app,
        &owner,
        &json!({
            "client_name": "Key agent", "redirect_uris": ["https://agent.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": signer.jwks(),
        }),
    )
    .await;
    let id = reply.expect(StatusCode::CREATED)["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let assertion = signer.sign(&signer.header(), &claims(&app, &id));
    let form = |jwt: &str| {
        vec![
            (
                "client_assertion_type".to_owned(),
                ASSERTION_TYPE.to_owned(),
            ),
            ("client_assertion".to_owned(), jwt.to_owned()),
        ]
    };
    let call = |extra: Vec<(String, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            identified(app, None, &pairs).await
        }
    };
    let mut with_id = form(&assertion);
    with_id.push(("client_id".into(), id.clone()));
    assert_eq!(call(with_id.clone()).await, Ok(id.clone()));
    // The same assertion again: a replay.
    let err = identify(
        &app,
        None,
        &with_id
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code.as_str(), "invalid_client");
    assert!(
        err.description.contains("used before"),
        "{}",
        err.description
    );

    // Without client_id, the assertion's sub names the client.
    let fresh = signer.sign(&signer.header(), &claims(&app, &id));
    assert_eq!(call(form(&fresh)).await, Ok(id.clone()));

    // Signed by another key, or naming another client, or no assertion at all: refused.
    let stranger = Signer::es256();
    let forged = stranger.sign(&stranger.header(), &claims(&app, &id));
    assert_eq!(call(form(&forged)).await, Err("invalid_client".into()));
    let mut mismatch = form(&signer.sign(&signer.header(), &claims(&app, &id)));
    mismatch.push((
        "client_id".into(),
        registered(&app, "none").await.str("client_id"),
    ));
    assert_eq!(call(mismatch).await, Err("invalid_client".into()));
    assert_eq!(
        call(vec![("client_id".into(), id.clone())]).await,
        Err("invalid_client".into())
    );
    let secret = keygate::clients::secret::ClientSecret::generate();
    assert_eq!(
        identified(&app, Some(&basic(&id, secret.expose())), &[]).await,
        Err("invalid_client".into())
    );

    // A browser client's assertion is no credential for client_credentials.
    let at_token_endpoint =
        client_assertion::token(&app, &signer.sign(&signer.header(), &claims(&app, &id))).await;
    client_assertion::refused(
        &at_token_endpoint,
        "no key-pair client",
        "cli at client_credentials",
    );
}

#[tokio::test]
async fn api_key_clients_are_still_identified_as_before() {
    let app = spawn_app().await;
    let o = &app.owner;
    assert_eq!(
        identified(&app, Some(&basic(&o.api_key_id, &o.api_key)), &[]).await,
        Ok(o.api_key_id.clone())
    );
    assert_eq!(
        identified(
            &app,
            None,
            &[("client_id", &o.api_key_id), ("client_secret", &o.api_key)]
        )
        .await,
        Ok(o.api_key_id.clone())
    );
    // A key client without its secret is not a public client.
    assert_eq!(
        identified(&app, None, &[("client_id", &o.api_key_id)]).await,
        Err("invalid_client".into())
    );
    // A key-pair API key's assertion without client_id is routed by its sub, as before.
    let key = client_assertion::client(&app, Signer::es256()).await;
    let jwt = key.assertion(&app);
    assert_eq!(
        identified(
            &app,
            None,
            &[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &jwt)
            ]
        )
        .await,
        Ok(key.id.clone())
    );
}
