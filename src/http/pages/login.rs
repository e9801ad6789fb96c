//! The sign-in pages: `GET/POST /v1/{org}/login`, `POST /v1/{org}/login/code`,
//! `POST /v1/{org}/logout` (README, "People sign in to keygate's pages"). The work is in
//! `people::login`; this file picks the page.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web as actix};
use entity::organization;

use super::{Form, failure, org_of, see_other, with_cookies};
use crate::admin::parse_email;
use crate::http::request_meta::request_meta;
use crate::oauth::authorize;
use crate::people::login::{self, CODE_TTL, CodeError, RequestError};
use crate::people::prelogin::PreLogin;
use crate::people::return_to::ReturnTo;
use crate::people::{self, Person, session};
use crate::state::AppState;
use crate::web::login::{CodePage, LoginPage, SignedInPage};
use crate::web::{self, page};

/// The sign-in page again (from the code page's link, or a refused form), keeping where to
/// go afterwards.
fn restart_href(org: &organization::Model, return_to: Option<&ReturnTo>) -> String {
    match return_to {
        Some(to) => format!(
            "/v1/{}/login?{}",
            org.slug,
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", to.as_str())
                .finish()
        ),
        None => format!("/v1/{}/login", org.slug),
    }
}

fn not_configured() -> HttpResponse {
    web::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Email sign-in is not configured",
        "This keygate server has no mail server to send sign-in codes with. Ask its \
         operator to configure one (smtp.url).",
    )
}

/// A form that did not come from this browser's sign-in page (no or a wrong CSRF token).
fn forbidden(org: &organization::Model, return_to: Option<&ReturnTo>) -> HttpResponse {
    web::notice(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "keygate only accepts this form from its own sign-in page, in the browser that \
         opened it. Open the sign-in page again and retry.",
        &restart_href(org, return_to),
        "Open the sign-in page",
    )
}

fn signed_in_page(org: &organization::Model, person: &Person) -> HttpResponse {
    page(
        StatusCode::OK,
        &SignedInPage {
            org_name: &org.name,
            slug: &org.slug,
            email: &person.email,
            csrf: person.csrf_token(),
        },
    )
}

fn login_page(
    state: &AppState,
    org: &organization::Model,
    browser: &PreLogin,
    return_to: Option<&ReturnTo>,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let html = page(
        status,
        &LoginPage {
            org_name: &org.name,
            slug: &org.slug,
            csrf: &browser.csrf_token(state),
            return_to: return_to.map_or("", ReturnTo::as_str),
            email,
            error,
        },
    );
    with_cookies(html, &[browser.cookie(state, &org.slug)])
}

#[allow(clippy::too_many_arguments)]
fn code_page(
    state: &AppState,
    org: &organization::Model,
    browser: &PreLogin,
    return_to: Option<&ReturnTo>,
    status: StatusCode,
    email: &str,
    challenge: &str,
    error: Option<&str>,
    continues_to: Option<&str>,
) -> HttpResponse {
    let mut response = page(
        status,
        &CodePage {
            org_name: &org.name,
            slug: &org.slug,
            csrf: &browser.csrf_token(state),
            return_to: return_to.map_or("", ReturnTo::as_str),
            email,
            challenge,
            minutes: CODE_TTL.as_secs() / 60,
            error,
            restart_href: &restart_href(org, return_to),
        },
    );
    // Signing in may go on to an authorization request that redirects to its client at once.
    if let Some(source) = continues_to {
        web::allow_form_action(&mut response, source);
    }
    response
}

/// The client origin a code form must let its answer redirect to (see [`code_page`]).
async fn continues_to(
    state: &AppState,
    org: &organization::Model,
    return_to: Option<&ReturnTo>,
) -> Option<String> {
    authorize::continuation_source(state, org, return_to?.as_str()).await
}

/// `GET /v1/{org}/login?return_to=…`: the email form; a signed-in person goes on to
/// `return_to` at once, or sees who they are signed in as.
pub async fn page_get(state: actix::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let org = match org_of(&state, &req).await {
        Ok(org) => org,
        Err(page) => return page,
    };
    let return_to = ReturnTo::from_form(&org.slug, Form::query(&req).get("return_to"));
    match people::signed_in(&state, &org, &req).await {
        Ok(Some(person)) => {
            return match return_to {
                Some(to) => see_other(to.as_str()).finish(),
                None => signed_in_page(&org, &person),
            };
        }
        Ok(None) => {}
        Err(err) => return failure(&err),
    }
    if !state.mailer.available() {
        return not_configured();
    }
    let browser = PreLogin::of_or_new(&req);
    login_page(
        &state,
        &org,
        &browser,
        return_to.as_ref(),
        StatusCode::OK,
        "",
        None,
    )
}

/// `POST /v1/{org}/login` (`email`, `csrf`, `return_to`): asks for a code and shows the
/// code page, the same for everyone.
pub async fn request_code(
    state: actix::Data<AppState>,
    req: HttpRequest,
    body: actix::Bytes,
) -> HttpResponse {
    let org = match org_of(&state, &req).await {
        Ok(org) => org,
        Err(page) => return page,
    };
    if !state.mailer.available() {
        return not_configured();
    }
    let form = Form::parse(&body);
    let return_to = ReturnTo::from_form(&org.slug, form.get("return_to"));
    let Some(browser) = PreLogin::of(&req).filter(|b| b.csrf_matches(&state, form.get("csrf")))
    else {
        return forbidden(&org, return_to.as_ref());
    };
    let typed = form.get("email").unwrap_or_default();
    let Ok(email) = parse_email(typed) else {
        return login_page(
            &state,
            &org,
            &browser,
            return_to.as_ref(),
            StatusCode::BAD_REQUEST,
            typed,
            Some("Enter your email address, like name@example.com."),
        );
    };
    match login::request_code(&state, &org, &email, &browser, &request_meta(&req)).await {
        Ok(requested) => code_page(
            &state,
            &org,
            &browser,
            return_to.as_ref(),
            StatusCode::OK,
            &email,
            &requested.challenge_id,
            None,
            continues_to(&state, &org, return_to.as_ref())
                .await
                .as_deref(),
        ),
        Err(RequestError::Throttled { retry_after }) => {
            let minutes = retry_after.div_ceil(60);
            let mut response = web::notice(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-in codes",
                &format!(
                    "Too many codes were asked for, for this email address or from this \
                     network. Wait {minutes} minute{} and try again; a code you already \
                     received still works until it expires.",
                    if minutes == 1 { "" } else { "s" }
                ),
                &restart_href(&org, return_to.as_ref()),
                "Back to the sign-in page",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
            response
        }
        Err(RequestError::Storage(err)) => failure(&err),
    }
}

/// `POST /v1/{org}/login/code` (`challenge`, `code`, `csrf`, `return_to`, `email` for
/// display): the right code starts a browser session and goes on to `return_to`.
pub async fn submit_code(
    state: actix::Data<AppState>,
    req: HttpRequest,
    body: actix::Bytes,
) -> HttpResponse {
    let org = match org_of(&state, &req).await {
        Ok(org) => org,
        Err(page) => return page,
    };
    let form = Form::parse(&body);
    let return_to = ReturnTo::from_form(&org.slug, form.get("return_to"));
    let Some(browser) = PreLogin::of(&req).filter(|b| b.csrf_matches(&state, form.get("csrf")))
    else {
        return forbidden(&org, return_to.as_ref());
    };
    let challenge = form.get("challenge").unwrap_or_default();
    let email = form.get("email").unwrap_or_default();
    let meta = request_meta(&req);
    let code = form.get("code").unwrap_or_default();
    let source = continues_to(&state, &org, return_to.as_ref()).await;
    let again = |error: &str| {
        code_page(
            &state,
            &org,
            &browser,
            return_to.as_ref(),
            StatusCode::BAD_REQUEST,
            email,
            challenge,
            Some(error),
            source.as_deref(),
        )
    };
    let ended = |title: &str, message: &str| {
        web::notice(
            StatusCode::BAD_REQUEST,
            title,
            message,
            &restart_href(&org, return_to.as_ref()),
            "Ask for a new code",
        )
    };
    let user = match login::verify_code(&state, &org, challenge, code, &browser, &meta).await {
        Ok(user) => user,
        Err(CodeError::Malformed) => return again("Enter the 6-digit code from the email."),
        Err(CodeError::Wrong { attempts_left }) => {
            return again(&format!(
                "That code is not right. You can try {attempts_left} more time{}.",
                if attempts_left == 1 { "" } else { "s" }
            ));
        }
        Err(CodeError::TooManyAttempts) => {
            return ended(
                "Too many wrong codes",
                "That code can no longer be used. Ask for a new one.",
            );
        }
        Err(CodeError::Expired) => {
            return ended(
                "That code has expired",
                "Codes work for 10 minutes. Ask for a new one.",
            );
        }
        Err(CodeError::Used) => {
            // A second click on "Sign in": the first one may already have signed in.
            if let Ok(Some(_)) = people::signed_in(&state, &org, &req).await {
                return see_other(
                    return_to
                        .unwrap_or_else(|| ReturnTo::sign_in_page(&org.slug))
                        .as_str(),
                )
                .finish();
            }
            return ended(
                "That code was used already",
                "Each code signs in once. Ask for a new one.",
            );
        }
        Err(CodeError::Unknown) => {
            return ended(
                "This sign-in has ended",
                "It was started in another browser, or is no longer known. Ask for a new code.",
            );
        }
        Err(CodeError::UserUnavailable) => {
            return web::message(
                StatusCode::FORBIDDEN,
                "You cannot sign in",
                "Your account in this organization is disabled. Ask its administrators.",
            );
        }
        Err(CodeError::Storage(err)) => return failure(&err),
    };
    // Whoever was signed in in this browser before is signed out.
    if let Ok(Some(previous)) = people::signed_in(&state, &org, &req).await
        && let Err(err) = session::end(&state, &org, &previous).await
    {
        return failure(&err);
    }
    let started = match session::start(&state, &org, &user).await {
        Ok(started) => started,
        Err(err) => return failure(&err),
    };
    let to = return_to.unwrap_or_else(|| ReturnTo::sign_in_page(&org.slug));
    see_other(to.as_str())
        .cookie(started.cookie)
        .cookie(PreLogin::clear(&state, &org.slug))
        .finish()
}

/// `POST /v1/{org}/logout` (`csrf`): ends the browser session, then shows the sign-in page.
pub async fn logout(
    state: actix::Data<AppState>,
    req: HttpRequest,
    body: actix::Bytes,
) -> HttpResponse {
    let org = match org_of(&state, &req).await {
        Ok(org) => org,
        Err(page) => return page,
    };
    let form = Form::parse(&body);
    let person = match people::signed_in(&state, &org, &req).await {
        Ok(person) => person,
        Err(err) => return failure(&err),
    };
    let login = format!("/v1/{}/login", org.slug);
    let Some(person) = person else {
        // Nobody to sign out: nothing a forged form could do.
        return see_other(&login).finish();
    };
    if !person.csrf_matches(form.get("csrf")) {
        return forbidden(&org, None);
    }
    match people::sign_out(&state, &org, &person, &request_meta(&req)).await {
        Ok(cookie) => see_other(&login).cookie(cookie).finish(),
        Err(err) => failure(&err),
    }
}

/// `GET /v1/{org}/login/code` and `GET /v1/{org}/logout` (a reload, a bookmark): the
/// sign-in page.
pub async fn to_sign_in_page(req: HttpRequest) -> HttpResponse {
    let slug = req.match_info().get("org").unwrap_or_default();
    match crate::types::Slug::parse(slug) {
        Ok(slug) => see_other(&format!("/v1/{}/login", slug.as_str())).finish(),
        Err(_) => web::message(
            StatusCode::NOT_FOUND,
            "Unknown organization",
            "There is no such organization on this keygate server.",
        ),
    }
}
