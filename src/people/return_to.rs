//! Where a browser goes once the person is signed in: a path of the same organization's
//! pages, never anywhere else (no open redirect). Anything that is not plainly such a path
//! is replaced by the sign-in page itself, which shows who is signed in.

/// The longest `return_to` kept (an authorization request with its query fits easily).
const MAX_LEN: usize = 2048;

/// A path of one organization, safe to put in `Location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// `raw` when it is a path of `org_slug`'s pages, with its query: it starts with
    /// `/v1/{org_slug}/` (so it has no scheme or host), has only visible ASCII (nothing can
    /// end the header line or hide a character), and its path has no `//`, no backslash
    /// (browsers read it as a slash), no encoded slash or backslash, and no `.` or `..`
    /// segment, written plainly or percent-encoded (browsers resolve both, RFC 3986 §5.2.4,
    /// so `/v1/{org}/../other` would leave the organization). The query is left alone.
    pub fn parse(org_slug: &str, raw: &str) -> Option<Self> {
        let prefix = format!("/v1/{org_slug}/");
        let path = raw.split(['?', '#']).next().unwrap_or_default();
        let dot_segment = |segment: &str| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".."
        };
        let lower = path.to_ascii_lowercase();
        let safe = raw.len() <= MAX_LEN
            && raw.starts_with(&prefix)
            && raw.bytes().all(|b| b.is_ascii_graphic())
            && !path.contains("//")
            && !path.contains('\\')
            && !path.split('/').any(dot_segment)
            && !lower.contains("%2f")
            && !lower.contains("%5c");
        safe.then(|| Self(raw.to_owned()))
    }

    /// `raw` if it is safe (see [`ReturnTo::parse`]), else `None`; an absent or empty value
    /// is `None` too.
    pub fn from_form(org_slug: &str, raw: Option<&str>) -> Option<Self> {
        raw.filter(|r| !r.is_empty())
            .and_then(|r| Self::parse(org_slug, r))
    }

    /// The safe default: the organization's sign-in page, which shows who is signed in.
    pub fn sign_in_page(org_slug: &str) -> Self {
        Self(format!("/v1/{org_slug}/login"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_organization_are_kept_with_their_query() {
        for ok in [
            "/v1/acme/oauth/authorize?client_id=a&redirect_uri=https%3A%2F%2Fx.example%2Fcb",
            "/v1/acme/device?user_code=ABCD-EFGH",
            "/v1/acme/login",
            "/v1/acme/x/y.z/..a",
            "/v1/acme/oauth/authorize?redirect_uri=https://x.example/cb&state=a\\b",
        ] {
            assert_eq!(
                ReturnTo::parse("acme", ok).as_ref().map(ReturnTo::as_str),
                Some(ok)
            );
        }
    }

    #[test]
    fn anything_that_could_leave_the_organization_is_refused() {
        for bad in [
            "https://evil.example/v1/acme/",
            "//evil.example/v1/acme/",
            "/v1/acme//evil.example",
            "/v1/acme/\\evil.example",
            "/\\evil.example",
            "/v1/acme",
            "/v1/acme-other/login",
            "/v1/other/login",
            "/v1/acme/../other/login",
            "/v1/acme/%2e%2e/other/login",
            "/v1/acme/%2E./other",
            "/v1/acme/./x",
            "/v1/acme/%2f%2fevil.example",
            "/v1/acme/%5cevil.example",
            "/v1/acme/x\r\nSet-Cookie: a=b",
            "/v1/acme/x y",
            "/v1/acme/é",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(ReturnTo::parse("acme", bad), None, "{bad:?}");
        }
        let long = format!("/v1/acme/{}", "a".repeat(MAX_LEN));
        assert_eq!(ReturnTo::parse("acme", &long), None);
        assert_eq!(ReturnTo::from_form("acme", Some("")), None);
        assert_eq!(ReturnTo::from_form("acme", None), None);
        assert_eq!(ReturnTo::sign_in_page("acme").as_str(), "/v1/acme/login");
    }
}
