//! keygate's pages for people (sign-in, consent, device approval): server-rendered HTML
//! from askama templates (`src/web/templates`), one stylesheet, no JavaScript. Every page
//! answers with the same protective headers: never cached, never framed
//! (`frame-ancestors 'none'`), no script, no referrer.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

pub mod login;

/// The pages' stylesheet, served at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("keygate.css");
pub const STYLESHEET_PATH: &str = "/assets/keygate.css";

/// No script, styles and images from keygate only, forms post only to keygate (a consent
/// form's redirect goes through keygate's own 303), never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page with `status`, rendered from `template`, with the headers every page carries.
pub fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => with_page_headers(HttpResponse::build(status))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            tracing::error!(error = %err, "a page failed to render");
            with_page_headers(HttpResponse::InternalServerError())
                .content_type("text/plain; charset=utf-8")
                .body("keygate could not render this page")
        }
    }
}

/// The headers of every page (and of the redirects pages answer with).
pub fn with_page_headers(
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    builder
}

/// Lets the forms of `response`'s page post to keygate AND be answered by a redirect to
/// `source` (an origin, or `scheme:`): browsers check `form-action` against every redirect
/// that answers a form, so a form whose answer sends the browser on to a client (consent,
/// a sign-in that continues to an authorization request) must allow the client's origin.
pub fn allow_form_action(response: &mut HttpResponse, source: &str) {
    let csp = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {source}"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// A page that only says something: an error nobody can be redirected to, a
/// confirmation.
#[derive(Template)]
#[template(path = "message.html", config = "src/web/askama.toml")]
pub struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// A message page with `status`.
pub fn message(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    page(status, &Message { title, message })
}

/// A page that says something and offers one way on (a link).
#[derive(Template)]
#[template(path = "notice.html", config = "src/web/askama.toml")]
pub struct Notice<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub href: &'a str,
    pub link: &'a str,
}

/// A notice page with `status`: `message`, then a link to `href` labelled `link`.
pub fn notice(
    status: StatusCode,
    title: &str,
    message: &str,
    href: &str,
    link: &str,
) -> HttpResponse {
    page(
        status,
        &Notice {
            title,
            message,
            href,
            link,
        },
    )
}

/// `GET /assets/keygate.css`.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_escaped_html() {
        let html = Message {
            title: "Oops",
            message: "<script>alert(1)</script>",
        }
        .render()
        .unwrap_or_default();
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("/assets/keygate.css"));
    }
}
