//! Mail to people: the sign-in code, sent over SMTP (RFC 5321) with lettre, from a
//! background queue so that the sign-in page answers in the same time whether or not a
//! mail goes out (and however slow the mail server is). Owns the `smtp` settings.
//!
//! `smtp.url` picks the transport: `smtps://` is TLS from the first byte (RFC 8314 §3.3,
//! port 465 by default), `smtp://` upgrades with STARTTLS (RFC 3207, port 587 by default)
//! and refuses to go on in clear when the server cannot, `?tls=none` is plain SMTP (for a
//! relay on the same machine). Credentials are the URL's user and password.
//!
//! With no `smtp.url`, a server whose public URL is on loopback writes each code to its
//! log instead, on one WARN line (development only; the format is documented in the README
//! and read by the CI browser test); any other server has no email sign-in at all. No other
//! line ever holds a code.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, mpsc};

use crate::config::SmtpSettings;

/// Mails waiting to be sent; past it a code is not sent (the person asks again) and a
/// warning is logged.
const QUEUE: usize = 1024;
/// Deliveries in flight at once.
const CONCURRENT: usize = 4;

/// The subject of the sign-in mail.
pub const SUBJECT: &str = "Your keygate sign-in code";

#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("smtp.url: {0}")]
    Url(String),
    #[error("smtp.from is required when smtp.url is set")]
    MissingFrom,
    #[error("smtp.from: `{0}` is not a mailbox (`name <address>` or `address`)")]
    From(String),
}

/// How `smtp.url` asks to protect the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtp://…?tls=none`: in clear.
    None,
}

/// `smtp.url`, parsed.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// User and password (percent-decoded), when the URL has a password.
    pub credentials: Option<(String, SecretString)>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpTarget {
    /// Parses `smtps://[user:password@]host[:port]` or
    /// `smtp://[user:password@]host[:port][?tls=none|required]`.
    pub fn parse(url: &str) -> Result<Self, MailConfigError> {
        let bad = |why: &str| MailConfigError::Url(why.to_owned());
        let url = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut tls = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), tls) {
                ("tls", None) => tls = Some(value.into_owned()),
                _ => return Err(bad("the only query parameter is `tls`, once")),
            }
        }
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => (Security::Tls, 465),
            ("smtp", None | Some("required")) => (Security::StartTls, 587),
            ("smtp", Some("none")) => (Security::None, 25),
            ("smtps", Some(_)) => return Err(bad("smtps:// is always TLS; drop `tls`")),
            ("smtp", Some(_)) => return Err(bad("`tls` is `required` or `none`")),
            _ => return Err(bad("the scheme is `smtps` or `smtp`")),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(bad("no path or fragment"));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad("the user or password is not UTF-8"))
        };
        let credentials = match url.password() {
            Some(password) => Some((
                decode(url.username())?,
                SecretString::from(decode(password)?),
            )),
            None if !url.username().is_empty() => {
                return Err(bad("a user needs a password (`user:password@host`)"));
            }
            None => None,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
        })
    }
}

/// Whether `host` is a loopback address or `localhost` (RFC 6761 §6.3).
fn is_loopback_host(host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `public_url`'s host is a loopback address or `localhost`.
pub fn is_loopback_url(public_url: &str) -> bool {
    url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

/// A sign-in code to mail: to whom, for which organization, until when.
pub struct CodeMail<'a> {
    pub to: &'a str,
    pub org_slug: &'a str,
    pub org_name: &'a str,
    pub code: &'a str,
    pub expires_at: DateTime<Utc>,
    pub valid_for: Duration,
}

impl CodeMail<'_> {
    /// The plain-text body (ASCII apart from the organization's name).
    pub fn body(&self) -> String {
        let org = if self.org_name == self.org_slug {
            self.org_slug.to_owned()
        } else {
            format!("{} ({})", self.org_name, self.org_slug)
        };
        format!(
            "Your code to sign in to {org} on keygate:\n\n    {code}\n\n\
             It works once, until {at} UTC ({minutes} minutes after you asked for it), \
             in the browser where you asked for it.\n\n\
             If you did not ask for it, you can ignore this message: nobody can sign in \
             without the code, and it expires by itself.\n",
            code = self.code,
            at = self.expires_at.format("%Y-%m-%d %H:%M"),
            minutes = self.valid_for.as_secs() / 60,
        )
    }
}

/// How this server delivers sign-in codes.
#[derive(Clone, Debug)]
enum Delivery {
    Smtp(mpsc::Sender<lettre::Message>, Mailbox),
    Log,
    Off,
}

/// Sends sign-in codes (`smtp.*`).
#[derive(Clone, Debug)]
pub struct Mailer {
    delivery: Delivery,
}

impl Mailer {
    /// The mailer `settings` describe, for a server reached at `public_url`. With SMTP it
    /// starts its sending task (so it must run inside the Tokio runtime).
    pub fn from_settings(
        settings: &SmtpSettings,
        public_url: &str,
    ) -> Result<Self, MailConfigError> {
        let Some(url) = &settings.url else {
            let delivery = if is_loopback_url(public_url) {
                tracing::warn!(
                    "no SMTP server configured (smtp.url): sign-in codes are written to this \
                     log (development only)"
                );
                Delivery::Log
            } else {
                tracing::warn!(
                    public_url,
                    "no SMTP server configured (smtp.url) and the public URL is not on \
                     loopback: people cannot sign in with an emailed code"
                );
                Delivery::Off
            };
            return Ok(Self { delivery });
        };
        let target = SmtpTarget::parse(url.expose_secret())?;
        let from = settings
            .from
            .as_deref()
            .ok_or(MailConfigError::MissingFrom)?;
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailConfigError::From(from.to_owned()))?;
        if target.security == Security::None && !is_loopback_host(&target.host) {
            tracing::warn!(
                host = %target.host,
                "smtp.url has tls=none: sign-in codes cross the network in clear"
            );
        }
        let transport = transport(&target, settings.timeout, public_url)?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(send_loop(transport, receiver));
        Ok(Self {
            delivery: Delivery::Smtp(queue, from),
        })
    }

    /// Whether people can get a code at all (SMTP configured, or the development log).
    pub fn available(&self) -> bool {
        !matches!(self.delivery, Delivery::Off)
    }

    /// Hands a sign-in code over for delivery; never waits for the mail server.
    pub fn send_code(&self, mail: &CodeMail<'_>) {
        match &self.delivery {
            Delivery::Smtp(queue, from) => {
                let message = match build(from, mail) {
                    Ok(message) => message,
                    Err(why) => {
                        tracing::warn!(error = %why, "a sign-in code could not be mailed");
                        return;
                    }
                };
                if queue.try_send(message).is_err() {
                    tracing::warn!("the mail queue is full: a sign-in code was not sent");
                }
            }
            // The development fallback: the one line that holds a code (README, "People
            // sign in to keygate's pages"). Keep its format: the CI browser test reads it.
            Delivery::Log => tracing::warn!(
                "login code for {} in org {}: {} (no SMTP configured; development only)",
                mail.to,
                mail.org_slug,
                mail.code
            ),
            Delivery::Off => {}
        }
    }
}

fn build(from: &Mailbox, mail: &CodeMail<'_>) -> Result<lettre::Message, String> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| "the recipient is not a mailbox lettre accepts".to_owned())?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(SUBJECT)
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body())
        .map_err(|e| e.to_string())
}

fn transport(
    target: &SmtpTarget,
    timeout: Duration,
    public_url: &str,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailConfigError> {
    let tls = |host: &str| {
        TlsParameters::new(host.to_owned())
            .map_err(|e| MailConfigError::Url(format!("TLS for {host}: {e}")))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
        .port(target.port)
        .timeout(Some(timeout));
    builder = match target.security {
        Security::Tls => builder.tls(Tls::Wrapper(tls(&target.host)?)),
        Security::StartTls => builder.tls(Tls::Required(tls(&target.host)?)),
        Security::None => builder.tls(Tls::None),
    };
    if let Some((user, password)) = &target.credentials {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    // EHLO names this server by its public host (RFC 5321 §4.1.1.1), an address literal
    // when that is an IP address (§4.1.3).
    let host = url::Url::parse(public_url)
        .ok()
        .and_then(|u| match u.host()? {
            url::Host::Domain(name) => Some(ClientId::Domain(name.to_owned())),
            url::Host::Ipv4(ip) => Some(ClientId::Ipv4(ip)),
            url::Host::Ipv6(ip) => Some(ClientId::Ipv6(ip)),
        });
    if let Some(host) = host {
        builder = builder.hello_name(host);
    }
    Ok(builder.build())
}

async fn send_loop(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    mut queue: mpsc::Receiver<lettre::Message>,
) {
    let transport = Arc::new(transport);
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    while let Some(message) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let transport = transport.clone();
        tokio::spawn(async move {
            if let Err(err) = transport.send(message).await {
                // lettre's error holds the server's reply, never the message.
                tracing::warn!(error = %err, "a sign-in code could not be mailed");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, u16, Security, Option<(String, String)>) {
        let t = SmtpTarget::parse(url).unwrap();
        (
            t.host,
            t.port,
            t.security,
            t.credentials
                .map(|(u, p)| (u, p.expose_secret().to_owned())),
        )
    }

    #[test]
    fn the_scheme_picks_tls_starttls_or_clear() {
        assert_eq!(
            parsed("smtps://mail.example.com"),
            ("mail.example.com".into(), 465, Security::Tls, None)
        );
        assert_eq!(
            parsed("smtp://mail.example.com"),
            ("mail.example.com".into(), 587, Security::StartTls, None)
        );
        assert_eq!(
            parsed("smtp://mail.example.com:2525?tls=required").2,
            Security::StartTls
        );
        assert_eq!(
            parsed("smtp://127.0.0.1:2525?tls=none"),
            ("127.0.0.1".into(), 2525, Security::None, None)
        );
        assert_eq!(parsed("smtp://[::1]:25?tls=none").0, "::1");
    }

    #[test]
    fn credentials_come_percent_decoded_from_the_url() {
        assert_eq!(
            parsed("smtps://apikey:p%40ss%2Bw%3Ard@smtp.example.com:465").3,
            Some(("apikey".into(), "p@ss+w:rd".into()))
        );
        assert_eq!(
            parsed("smtp://me%40example.com:s+cret@smtp.example.com").3,
            Some(("me@example.com".into(), "s+cret".into()))
        );
    }

    #[test]
    fn malformed_urls_are_refused_and_never_show_the_password() {
        for bad in [
            "http://mail.example.com",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://mail.example.com?tls=none&tls=none",
            "smtp://mail.example.com?x=1",
            "smtp://user@mail.example.com",
            "smtp://mail.example.com/path",
            "smtp://",
            "not a url",
        ] {
            assert!(SmtpTarget::parse(bad).is_err(), "{bad}");
        }
        let target = SmtpTarget::parse("smtps://u:hunter2@mail.example.com").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[test]
    fn loopback_public_urls_are_recognised() {
        for yes in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://app.localhost",
        ] {
            assert!(is_loopback_url(yes), "{yes}");
        }
        for no in [
            "https://keygate.example",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]",
        ] {
            assert!(!is_loopback_url(no), "{no}");
        }
    }

    #[test]
    fn the_mail_holds_the_code_and_its_expiry() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T12:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mail = CodeMail {
            to: "alice@example.com",
            org_slug: "acme",
            org_name: "Acme",
            code: "012345",
            expires_at: at,
            valid_for: Duration::from_secs(600),
        };
        let body = mail.body();
        assert!(body.contains("\n    012345\n"), "{body}");
        assert!(body.contains("2026-12-07 12:10 UTC (10 minutes"), "{body}");
        assert!(body.contains("sign in to Acme (acme) on keygate"), "{body}");
        let from: Mailbox = "keygate <keygate@example.com>".parse().unwrap();
        let message = String::from_utf8(build(&from, &mail).unwrap().formatted()).unwrap();
        assert!(
            message.contains("Subject: Your keygate sign-in code"),
            "{message}"
        );
        assert!(message.contains("To: alice@example.com"), "{message}");
    }
}
