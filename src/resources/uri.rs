//! Resource indicators (RFC 8707 §2): what a `resource` value may be, and its one
//! normalized spelling, so that a URI registered one way and requested another (`HTTPS://`,
//! `:443`) names the same resource, and `aud` is always spelled as registered.

use std::fmt;

/// A resource URI after [`ResourceUri::parse`]: absolute, `https` (or `http` on a loopback
/// host), no fragment, no user information, scheme and host lower case, default port
/// dropped (the WHATWG URL serialization, which JavaScript's `URL` and Rust's `url` share,
/// so an MCP client's `new URL(server).href` compares equal).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceUri(String);

/// Longest URI accepted.
pub const MAX_LEN: usize = 2048;

/// Why a value is not a resource indicator (the message names the rule).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUri(pub String);

impl ResourceUri {
    pub fn parse(text: &str) -> Result<Self, InvalidUri> {
        let shown: String = text.chars().take(80).collect();
        let bad = |why: &str| InvalidUri(format!("`{shown}` is not a resource URI: {why}"));
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(bad(&format!("it must be 1 to {MAX_LEN} characters")));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains white space or control characters"));
        }
        // RFC 8707 §2: "MUST NOT include a fragment component" (an empty `#` included).
        if text.contains('#') {
            return Err(bad("it must not have a fragment (`#…`)"));
        }
        let url = url::Url::parse(text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                bad("it must be an absolute URI (with a scheme and a host)")
            }
            other => bad(&other.to_string()),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it must not carry user information"));
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(bad("it must have a host")),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("it must be https (http only on a loopback host)")),
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_scheme_host_and_default_port() {
        for (given, want) in [
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
            (
                "HTTPS://MCP.Example.COM:443/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("https://mcp.example.com", "https://mcp.example.com/"),
            (
                "https://mcp.example.com:8443/a?b=c",
                "https://mcp.example.com:8443/a?b=c",
            ),
            ("http://127.0.0.1:80/x", "http://127.0.0.1/x"),
            ("http://localhost:3000/mcp", "http://localhost:3000/mcp"),
            ("http://[::1]:9000/", "http://[::1]:9000/"),
            // The path keeps its case: only scheme and host are case-insensitive.
            (
                "https://api.example.com/V1/Files",
                "https://api.example.com/V1/Files",
            ),
        ] {
            assert_eq!(ResourceUri::parse(given).unwrap().as_str(), want, "{given}");
        }
    }

    #[test]
    fn refuses_relative_fragments_plain_http_and_other_schemes() {
        for bad in [
            "",
            "mcp.example.com",
            "/mcp",
            "//mcp.example.com/mcp",
            "https://mcp.example.com/mcp#tools",
            "https://mcp.example.com/mcp#",
            "http://mcp.example.com/mcp",
            "http://10.0.0.1/mcp",
            "ftp://mcp.example.com/",
            "urn:example:mcp",
            "https://user:pw@mcp.example.com/",
            "https://mcp.example.com/a b",
            "file:///etc/passwd",
        ] {
            assert!(ResourceUri::parse(bad).is_err(), "{bad}");
        }
        assert!(ResourceUri::parse(&format!("https://a.example/{}", "x".repeat(MAX_LEN))).is_err());
    }
}
