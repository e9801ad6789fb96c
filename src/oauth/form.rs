//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2: no parameter may
//! appear twice; parameters without a value are treated as omitted).

use std::collections::HashMap;

use super::OAuthError;

#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{name}` appears more than once"
                )));
            }
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
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
    }
}
