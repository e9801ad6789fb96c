//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2: no parameter may
//! appear twice, except those an extension makes repeatable: RFC 8707's `resource`, RFC 8693's `audience`;
//! parameters without a value are treated as omitted).

use std::collections::HashMap;

use super::OAuthError;

/// Parameters that may appear more than once (RFC 8707 §2, RFC 8693 §2.1).
const REPEATABLE: &[&str] = &["resource", "audience"];

#[derive(Debug, Default)]
pub struct Params {
    single: HashMap<String, String>,
    repeated: HashMap<&'static str, Vec<String>>,
}

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        let mut repeated: HashMap<&'static str, Vec<String>> = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if let Some(name) = REPEATABLE.iter().find(|r| **r == name) {
                if !value.is_empty() {
                    repeated.entry(name).or_default().push(value.into_owned());
                }
                continue;
            }
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{name}` appears more than once"
                )));
            }
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self {
            single: map,
            repeated,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// Every value of a repeatable parameter, in order (none: empty).
    pub fn get_all(&self, name: &str) -> &[String] {
        self.repeated.get(name).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_duplicates() {
        let p = Params::parse(b"grant_type=client_credentials&scope=a+b&x=%2B&empty=").unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a b"));
        assert_eq!(p.get("x"), Some("+"));
        assert_eq!(p.get("empty"), None);
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"resource=https%3A%2F%2Fa.example%2F&resource=&resource=b").unwrap();
        assert_eq!(p.get_all("resource"), ["https://a.example/", "b"]);
        assert_eq!(p.get("resource"), None);
        assert!(Params::parse(b"").unwrap().get_all("resource").is_empty());
    }
}
