//! The sign-in pages (`/v1/{org}/login`): what they show; `http::pages::login` decides
//! which one and `people::login` does the work.

use askama::Template;

/// Asks for an email address.
#[derive(Template)]
#[template(path = "login.html", config = "src/web/askama.toml")]
pub struct LoginPage<'a> {
    pub org_name: &'a str,
    pub slug: &'a str,
    pub csrf: &'a str,
    /// A checked `return_to`, or empty.
    pub return_to: &'a str,
    /// What was typed, when the page comes back with an error.
    pub email: &'a str,
    pub error: Option<&'a str>,
}

/// Asks for the code that was (maybe) mailed.
#[derive(Template)]
#[template(path = "login_code.html", config = "src/web/askama.toml")]
pub struct CodePage<'a> {
    pub org_name: &'a str,
    pub slug: &'a str,
    pub csrf: &'a str,
    pub return_to: &'a str,
    pub email: &'a str,
    pub challenge: &'a str,
    /// How long a code works.
    pub minutes: u64,
    pub error: Option<&'a str>,
    /// The sign-in page again, keeping `return_to`.
    pub restart_href: &'a str,
}

/// Says who is signed in, with a sign-out button.
#[derive(Template)]
#[template(path = "signed_in.html", config = "src/web/askama.toml")]
pub struct SignedInPage<'a> {
    pub org_name: &'a str,
    pub slug: &'a str,
    pub email: &'a str,
    pub csrf: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_have_labelled_inputs_and_escape_what_was_typed() {
        let html = LoginPage {
            org_name: "Acme",
            slug: "acme",
            csrf: "c5rf",
            return_to: "/v1/acme/device",
            email: "\"><script>x</script>",
            error: Some("Enter an email address"),
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"<label for="email">"#));
        assert!(html.contains(r#"name="email" autocomplete="email" required"#));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="c5rf">"#));
        assert!(!html.contains("<script>"));
        assert!(html.contains(r#"<button type="submit" class="primary">"#));

        let html = CodePage {
            org_name: "Acme",
            slug: "acme",
            csrf: "c5rf",
            return_to: "",
            email: "alice@example.com",
            challenge: "lgc_x",
            minutes: 10,
            error: None,
            restart_href: "/v1/acme/login",
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"<label for="code">"#));
        assert!(html.contains(
            r#"name="code" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" required"#
        ));
        assert!(html.contains("If <strong>alice@example.com</strong> may sign in to Acme"));
    }
}
