//! `htu` matching (RFC 9449 §4.3 step 9): the proof's URI, without query and fragment,
//! compared with the server's public URL plus the request path, both normalised by the
//! WHATWG URL parser (scheme and host lower-cased, default ports dropped, dot segments
//! resolved). Comparing with the configured public URL, not the `Host` the request came
//! with, keeps it right behind a proxy.

use url::Url;

/// The configured `server.public_url`, parsed once.
#[derive(Debug)]
pub struct PublicUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// The path prefix under which keygate is published, without a trailing slash.
    base_path: String,
}

#[derive(Debug, thiserror::Error)]
#[error("server.public_url `{0}` is not an absolute http(s) URL")]
pub struct InvalidPublicUrl(String);

impl PublicUrl {
    pub fn parse(public_url: &str) -> Result<Self, InvalidPublicUrl> {
        let url = Url::parse(public_url).map_err(|_| InvalidPublicUrl(public_url.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidPublicUrl(public_url.to_owned()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| InvalidPublicUrl(public_url.to_owned()))?;
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port: url.port_or_known_default(),
            base_path: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// True when `htu` names this server's `path`.
    pub fn matches(&self, htu: &str, path: &str) -> bool {
        let Ok(proof) = Url::parse(htu) else {
            return false;
        };
        if proof.scheme() != self.scheme
            || proof.host_str() != Some(self.host.as_str())
            || proof.port_or_known_default() != self.port
        {
            return false;
        }
        // Normalise the expected path the same way the proof's was.
        let mut expected = Url::parse("http://h/").ok();
        if let Some(url) = expected.as_mut() {
            url.set_path(&format!("{}{path}", self.base_path));
        }
        expected.is_some_and(|e| e.path() == proof.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_host_case_default_ports_query_and_fragment() {
        let public = PublicUrl::parse("https://Auth.Example.com").unwrap();
        let path = "/v1/acme/user/me";
        for ok in [
            "https://auth.example.com/v1/acme/user/me",
            "HTTPS://AUTH.EXAMPLE.COM/v1/acme/user/me",
            "https://auth.example.com:443/v1/acme/user/me",
            "https://auth.example.com/v1/acme/user/me?x=1",
            "https://auth.example.com/v1/acme/user/me#frag",
            "https://auth.example.com/v1/acme/./user/me",
        ] {
            assert!(public.matches(ok, path), "{ok}");
        }
        for bad in [
            "http://auth.example.com/v1/acme/user/me",
            "https://auth.example.com:8443/v1/acme/user/me",
            "https://evil.example.com/v1/acme/user/me",
            "https://auth.example.com/v1/acme/user/me/",
            "https://auth.example.com/v1/ACME/user/me",
            "https://auth.example.com/v1/other/user/me",
            "/v1/acme/user/me",
            "not a url",
        ] {
            assert!(!public.matches(bad, path), "{bad}");
        }
    }

    #[test]
    fn a_path_prefix_and_an_explicit_port_are_part_of_the_public_url() {
        let public = PublicUrl::parse("http://127.0.0.1:8080/auth/").unwrap();
        assert!(public.matches("http://127.0.0.1:8080/auth/v1/a/user/me", "/v1/a/user/me"));
        assert!(!public.matches("http://127.0.0.1/auth/v1/a/user/me", "/v1/a/user/me"));
        assert!(!public.matches("http://127.0.0.1:8080/v1/a/user/me", "/v1/a/user/me"));
        assert!(PublicUrl::parse("ftp://x").is_err());
        assert!(PublicUrl::parse("x").is_err());
    }
}
