//! People sign in to keygate's pages with an emailed code (README, "People sign in to
//! keygate's pages"): a browser that keeps its cookies by hand (so the tests see every
//! attribute), a real SMTP server for the mail, and the pages' forms as a person fills them.

mod csrf;
mod dev_log;
mod flow;
mod mail;
mod pages;
mod race;
mod return_to;
mod smtp_sink;
mod throttle;

use std::collections::BTreeMap;

use keygate::config::Settings;
use keygate::types::Role;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::helpers::{TestApp, spawn_app_with};
use smtp_sink::{Mail, SmtpSink};

pub const ORG: &str = "default";

/// An app that mails through a fresh [`SmtpSink`].
pub async fn spawn_with_mail() -> (TestApp, SmtpSink) {
    spawn_with_mail_and(|_| {}).await
}

pub async fn spawn_with_mail_and(configure: impl FnOnce(&mut Settings)) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(|s| {
        s.smtp.url = Some(url.into());
        s.smtp.from = Some("keygate <keygate@keygate.test>".into());
        configure(s);
    })
    .await;
    (app, sink)
}

/// Adds a person (a user with an email of our choosing) to `org`.
pub async fn add_person(app: &TestApp, org: &str, email: &str, role: Role) -> entity::user::Model {
    let model = keygate::admin::find_org(&app.state.storage, org)
        .await
        .unwrap();
    keygate::admin::create_user(
        &app.state.storage,
        app.clock.as_ref(),
        &model,
        email,
        None,
        role,
    )
    .await
    .unwrap()
}

/// A response as a person's browser got it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location: {self:?}"))
    }

    /// The `Set-Cookie` line for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the hidden form field `name`.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!(r#"<input type="hidden" name="{name}" value=""#);
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no hidden {name} in {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        unescape(&self.html[start..end])
    }

    /// Asserts the headers every page and redirect carries.
    pub fn assert_protected(&self) {
        let csp = self.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{self:?}");
        assert!(csp.contains("default-src 'none'"), "{self:?}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        if self.status != StatusCode::SEE_OTHER {
            assert_eq!(
                self.header("content-type"),
                Some("text/html; charset=utf-8"),
                "{self:?}"
            );
        }
    }
}

/// The HTML escapes askama writes.
fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// A browser: follows no redirect by itself, keeps cookies by name (every cookie here has
/// the organization's path).
pub struct Browser {
    client: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.address)
    }

    /// A browser of the keygate at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    /// Another browser of the same app, with no cookies.
    pub fn new_like(other: &Browser) -> Self {
        Self {
            client: other.client.clone(),
            base: other.base.clone(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for line in headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let html = response.text().await.unwrap();
        Page {
            status,
            headers,
            html,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(response).await
    }

    /// The request a form post makes, not sent (for races).
    pub fn post_request(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(fields)
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self.post_request(path, fields).send().await.unwrap();
        self.take(response).await
    }

    /// Opens the sign-in page and asks for a code for `email`: the code page.
    pub async fn ask_code(&mut self, org: &str, email: &str, return_to: Option<&str>) -> Page {
        let path = match return_to {
            Some(to) => format!(
                "/v1/{org}/login?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", to)
                    .finish()
            ),
            None => format!("/v1/{org}/login"),
        };
        let login = self.get(&path).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.html);
        let csrf = login.hidden("csrf");
        let return_to = login.hidden("return_to");
        let page = self
            .post(
                &format!("/v1/{org}/login"),
                &[("email", email), ("csrf", &csrf), ("return_to", &return_to)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page
    }

    /// The fields the code page posts, with `code`.
    pub fn code_fields(code_page: &Page, code: &str) -> Vec<(String, String)> {
        ["csrf", "challenge", "email", "return_to"]
            .iter()
            .map(|f| ((*f).to_owned(), code_page.hidden(f)))
            .chain([("code".to_owned(), code.to_owned())])
            .collect()
    }

    /// Submits `code` on `code_page`.
    pub async fn submit_code(&mut self, org: &str, code_page: &Page, code: &str) -> Page {
        let fields = Self::code_fields(code_page, code);
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post(&format!("/v1/{org}/login/code"), &fields).await
    }

    /// Signs `email` in with the code from `sink`: the final redirect.
    pub async fn sign_in(&mut self, sink: &SmtpSink, org: &str, email: &str) -> Page {
        let before = mails_to(sink, email).len();
        let page = self.ask_code(org, email, None).await;
        let code = sink.mail_number(email, before + 1).await.code();
        let done = self.submit_code(org, &page, &code).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
        done
    }

    /// Who the sign-in page says is signed in, if anyone.
    pub async fn signed_in_as(&mut self, org: &str) -> Option<String> {
        let page = self.get(&format!("/v1/{org}/login")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        let marker = "You are signed in as <strong>";
        page.html.find(marker).map(|at| {
            let rest = &page.html[at + marker.len()..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
    }
}

/// Every mail the sink holds for `email`.
pub fn mails_to(sink: &SmtpSink, email: &str) -> Vec<Mail> {
    sink.mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == email))
        .collect()
}
