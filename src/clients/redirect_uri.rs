//! Redirect URIs of browser clients: which may be registered (RFC 6749 §3.1.2, OAuth 2.1
//! §2.3, RFC 8252 §7 for native apps) and whether the `redirect_uri` of a request is one of
//! a client's. Pure: no HTTP, no database.
//!
//! A registered redirect URI is absolute and has no fragment (RFC 6749 §3.1.2), and is one
//! of:
//! - `https` with a host (and no user name or password);
//! - `http` to a loopback host: `127.0.0.1`, `[::1]` or `localhost` (RFC 8252 §7.3, §8.3);
//! - a private-use scheme of a native app, a reversed domain name with a dot in it
//!   (`com.example.app:/callback`, RFC 8252 §7.1).
//!
//! A request's `redirect_uri` must equal a registered one exactly (simple string comparison,
//! RFC 6749 §3.1.2.3 and OAuth 2.1), except that for an `http` loopback redirect URI the
//! port may differ (RFC 8252 §7.3: a native app listens on whatever port it gets).

/// The most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// The longest redirect URI accepted.
pub const MAX_LEN: usize = 2000;

const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// Schemes that are never a native app's: whatever their shape, they are refused.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// Checks the redirect URIs a client registers: at least one, at most
/// [`MAX_REDIRECT_URIS`], each valid ([`check`]) and none twice. The error names the bad one.
pub fn check_all(uris: &[String]) -> Result<(), String> {
    if uris.is_empty() {
        return Err("`redirect_uris` must name at least one redirect URI".into());
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "`redirect_uris` may name at most {MAX_REDIRECT_URIS} redirect URIs"
        ));
    }
    for (i, uri) in uris.iter().enumerate() {
        check(uri)?;
        if uris[..i].contains(uri) {
            return Err(format!("`redirect_uris` names `{}` twice", shown(uri)));
        }
    }
    Ok(())
}

/// The start of `uri` for an error message (never all of a long value).
fn shown(uri: &str) -> String {
    uri.chars().take(100).collect()
}

/// Checks one redirect URI a client registers.
pub fn check(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URI `{}`: {why}", shown(uri)));
    if uri.len() > MAX_LEN {
        return bad(&format!("longer than {MAX_LEN} characters"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains white space or control characters");
    }
    if uri.contains('#') {
        return bad("a redirect URI has no fragment (RFC 6749 §3.1.2)");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return bad("not an absolute URI (RFC 6749 §3.1.2)");
    };
    match parsed.scheme() {
        "https" => {
            if parsed.host_str().is_none_or(str::is_empty) {
                return bad("an https redirect URI needs a host");
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return bad("a redirect URI carries no user name or password");
            }
            Ok(())
        }
        "http" => {
            if !is_loopback(&parsed) {
                return bad(
                    "http is allowed only to a loopback host (127.0.0.1, [::1] or localhost, \
                     RFC 8252 §7.3); use https",
                );
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return bad("a redirect URI carries no user name or password");
            }
            Ok(())
        }
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => bad("this scheme is never a redirect URI"),
        scheme if scheme.contains('.') => Ok(()),
        _ => bad(
            "use https, http to a loopback host, or a private-use scheme that is a reversed \
             domain name such as com.example.app (RFC 8252 §7.1)",
        ),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    url.scheme() == "http"
        && url
            .host_str()
            .is_some_and(|h| LOOPBACK_HOSTS.iter().any(|l| l.eq_ignore_ascii_case(h)))
}

/// `url` without its port, for the loopback comparison.
fn without_port(url: &url::Url) -> Option<String> {
    let mut url = url.clone();
    url.set_port(None).ok()?;
    Some(url.into())
}

/// Whether a request's `redirect_uri` is one of `registered`: equal to one as a string, or,
/// for an `http` loopback redirect URI, equal but for the port (RFC 8252 §7.3).
pub fn matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(asked) = url::Url::parse(requested) else {
        return false;
    };
    if !is_loopback(&asked) || requested.contains('#') {
        return false;
    }
    let Some(asked) = without_port(&asked) else {
        return false;
    };
    registered.iter().any(|r| {
        url::Url::parse(r)
            .ok()
            .filter(is_loopback)
            .and_then(|r| without_port(&r))
            .is_some_and(|r| r == asked)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_may_be_registered() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:33418/callback",
            "http://[::1]:8080/cb",
            "http://localhost:6274/oauth/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app:/",
            "cursor.app://callback",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for bad in [
            "",
            "/callback",
            "app.example.com/callback",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "http://app.example.com/callback",
            "http://192.168.1.2/callback",
            "http://127.0.0.2/callback",
            "http://localhost.example.com/cb",
            "https://user:pass@app.example.com/cb",
            "myapp:/callback",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "https://app.example.com/a b",
            "ftp://files.example.com/cb",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&format!("https://a.example/{}", "x".repeat(MAX_LEN))).is_err());
    }

    #[test]
    fn lists_need_one_and_no_duplicates() {
        assert!(check_all(&[]).is_err());
        let one = vec!["https://a.example/cb".to_owned()];
        assert!(check_all(&one).is_ok());
        assert!(check_all(&[one[0].clone(), one[0].clone()]).is_err());
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("https://a.example/{i}"))
            .collect();
        assert!(check_all(&many).is_err());
    }

    #[test]
    fn requests_match_exactly_or_by_loopback_port() {
        let registered = vec![
            "https://app.example.com/cb".to_owned(),
            "http://127.0.0.1/callback".to_owned(),
            "http://localhost:3000/cb".to_owned(),
            "com.example.app:/cb".to_owned(),
        ];
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://localhost:3000/cb",
            "http://localhost:61000/cb",
            "com.example.app:/cb",
        ] {
            assert!(matches(&registered, ok), "{ok}");
        }
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://APP.example.com/cb",
            "https://app.example.com:444/cb",
            "http://app.example.com/cb",
            "http://127.0.0.1:49152/callback/other",
            "http://127.0.0.1:49152/callback#x",
            "http://[::1]:49152/callback",
            "http://localhost:3000/cb?x",
            "com.example.app:/cb2",
            "not a uri",
        ] {
            assert!(!matches(&registered, bad), "{bad}");
        }
    }
}
