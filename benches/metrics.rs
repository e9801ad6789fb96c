//! What recording metrics adds to one request (README, "Performance"): the metrics
//! middleware's whole per-request work (clock, route template from actix's match, two
//! series updated in the Prometheus recorder) measured as the difference between the same
//! request through an app with and without it, plus `record` alone. The app has the shape
//! of keygate's: an organization scope with as many resources.
//!
//! ```text
//! cargo bench --bench metrics
//! ```

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use keygate::http::metrics::{method_label, record, record_middleware};

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Resources of keygate's organization scope, in its order (`/user/me` second).
const ORG_ROUTES: &[&str] = &[
    "/user/signin_with_api_key",
    "/user/me",
    "/oauth/authorize",
    "/login",
    "/login/code",
    "/logout",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/oauth/device_authorization",
    "/device",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/api_keys",
    "/api_keys/{id}",
    "/api_keys/{id}/rotate",
    "/users",
    "/users/{id}",
    "/users/{id}/consents",
    "/sessions",
    "/sessions/{id}",
    "/audit_events",
    "/cross_org_grants",
    "/cross_org_grants/{id}",
    "/trusted_issuers",
    "/trusted_issuers/{id}",
    "/resources",
    "/resources/{id}",
    "/resources/{id}/protected-resource-metadata",
    "/clients",
    "/clients/{id}",
    "/oauth/register",
];

fn routes(cfg: &mut web::ServiceConfig) {
    let mut scope = web::scope("/v1/{org}");
    for path in ORG_ROUTES {
        scope = scope.service(web::resource(*path).route(web::get().to(ok)));
    }
    cfg.service(web::resource("/healthz").route(web::get().to(ok)))
        .service(scope);
}

/// Time of `iters` requests to `path` through `service`, one after another.
macro_rules! run {
    ($service:expr, $path:expr, $iters:expr) => {{
        let start = Instant::now();
        for _ in 0..$iters {
            let req = test::TestRequest::get().uri($path).to_request();
            let res = $service.call(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        start.elapsed()
    }};
}

fn bench(c: &mut Criterion) {
    keygate::metrics::install().expect("recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (plain, measured) = rt.block_on(async {
        (
            test::init_service(App::new().configure(routes)).await,
            test::init_service(
                App::new()
                    .configure(routes)
                    .wrap(from_fn(record_middleware)),
            )
            .await,
        )
    });
    let mut group = c.benchmark_group("metrics");
    for path in [
        "/v1/acme/user/me",
        "/v1/acme/resources/res_123/protected-resource-metadata",
    ] {
        group.bench_function(format!("request {path} without metrics"), |b| {
            b.iter_custom(|iters| rt.block_on(async { run!(plain, path, iters) }))
        });
        group.bench_function(format!("request {path} with metrics"), |b| {
            b.iter_custom(|iters| rt.block_on(async { run!(measured, path, iters) }))
        });
    }
    group.bench_function("record alone", |b| {
        let method = method_label(&actix_web::http::Method::GET);
        b.iter(|| {
            record(
                method,
                Some("/v1/{org}/user/me".to_owned()),
                StatusCode::OK,
                0.000_42,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
