//! The scopes a protected resource defines: RFC 6749 §3.3 scope tokens
//! (`%x21 / %x23-5B / %x5D-7E`, so no space, `"` or `\`), kept sorted and distinct.

use std::collections::BTreeSet;

/// Most scopes one resource may define.
pub const MAX_SCOPES: usize = 100;
/// Longest scope name.
pub const MAX_SCOPE_LEN: usize = 128;

fn is_scope_char(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')
}

/// Checks one scope token; the error names it.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SCOPE_LEN || !name.chars().all(is_scope_char) {
        return Err(format!(
            "`{}` is not a scope: 1 to {MAX_SCOPE_LEN} visible ASCII characters other than `\"` and `\\`",
            name.chars().take(60).collect::<String>()
        ));
    }
    Ok(())
}

/// Checks `names` and returns them sorted and distinct; the error names the bad one.
pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for name in names {
        check(name)?;
        set.insert(name.to_owned());
    }
    if set.len() > MAX_SCOPES {
        return Err(format!("a resource defines at most {MAX_SCOPES} scopes"));
    }
    Ok(set)
}

/// The stored, space-separated form.
pub fn render(scopes: &BTreeSet<String>) -> String {
    scopes.iter().cloned().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_per_rfc_6749() {
        let ok = parse(["mcp:tools", "files:read", "mcp:tools", "a/b.c~!"]).unwrap();
        assert_eq!(render(&ok), "a/b.c~! files:read mcp:tools");
        for bad in ["", "a b", "quote\"d", "back\\slash", "é", "tab\t"] {
            assert!(parse([bad]).is_err(), "{bad:?}");
        }
        assert!(parse([&*"x".repeat(MAX_SCOPE_LEN + 1)]).is_err());
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert!(parse(many.iter().map(String::as_str)).is_err());
    }
}
