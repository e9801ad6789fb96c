use super::*;

#[test]
#[allow(clippy::result_large_err)]
fn layers_override_in_order_and_reject_unknown_keys() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "default.toml",
            "[tokens]\naccess_ttl = \"10m\"\n[server]\nbind = \"0.0.0.0:1\"",
        )?;
        jail.create_file("site.toml", "[tokens]\naccess_ttl = \"5m\"")?;
        jail.set_env("KEYGATE__TOKENS__ACCESS_TTL", "2m");
        jail.set_env("KEYGATE__DATA_DIR", "/srv/kg");
        let s: Settings =
            Settings::figment(Path::new("default.toml"), Some(Path::new("site.toml")))
                .unwrap()
                .merge(Env::prefixed("KEYGATE__").split("__"))
                .extract()?;
        assert_eq!(s.tokens.access_ttl, Duration::from_secs(120));
        assert_eq!(s.server.bind, "0.0.0.0:1");
        assert_eq!(s.data_dir, PathBuf::from("/srv/kg"));
        assert_eq!(s.tokens.refresh_ttl, Duration::from_secs(30 * 86_400));

        jail.set_env("KEYGATE__TOKENS__ACESS_TTL", "1m");
        let err = Settings::figment(Path::new("default.toml"), None)
            .unwrap()
            .merge(Env::prefixed("KEYGATE__").split("__"))
            .extract::<Settings>()
            .unwrap_err();
        assert!(err.to_string().contains("acess_ttl"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)]
fn throttle_proxy_and_audit_settings_have_their_documented_names() {
    figment::Jail::expect_with(|jail| {
        let defaults: Settings = Figment::new().extract()?;
        assert_eq!(defaults.limits.failed_auth_per_key_per_minute, 10);
        assert_eq!(defaults.limits.failed_auth_per_ip_per_minute, 30);
        assert!(defaults.server.trusted_proxies.is_empty());
        jail.set_env("KEYGATE__LIMITS__FAILED_AUTH_PER_KEY_PER_MINUTE", "100");
        jail.set_env("KEYGATE__LIMITS__FAILED_AUTH_PER_IP_PER_MINUTE", "1000");
        jail.set_env(
            "KEYGATE__SERVER__TRUSTED_PROXIES",
            "[\"10.0.0.0/8\", \"::1\"]",
        );
        jail.set_env("KEYGATE__AUDIT__QUEUE_CAPACITY", "16");
        let s: Settings = Figment::new()
            .merge(Env::prefixed("KEYGATE__").split("__"))
            .extract()?;
        assert_eq!(s.limits.failed_auth_per_key_per_minute, 100);
        assert_eq!(s.limits.failed_auth_per_ip_per_minute, 1000);
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "::1"]);
        assert_eq!(s.audit.queue_capacity, 16);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)]
fn login_and_smtp_settings_have_their_documented_names_and_defaults() {
    use secrecy::ExposeSecret;
    figment::Jail::expect_with(|jail| {
        let defaults: Settings = Figment::new().extract()?;
        assert_eq!(defaults.login.codes_per_email, 5);
        assert_eq!(defaults.login.codes_per_ip, 30);
        assert_eq!(defaults.login.window, Duration::from_secs(900));
        assert!(defaults.smtp.url.is_none() && defaults.smtp.from.is_none());
        assert_eq!(defaults.smtp.timeout, Duration::from_secs(15));
        jail.set_env("KEYGATE__SMTP__URL", "smtps://me:hunter2@mail.example.com");
        jail.set_env("KEYGATE__SMTP__FROM", "keygate <keygate@example.com>");
        jail.set_env("KEYGATE__LOGIN__CODES_PER_EMAIL", "3");
        jail.set_env("KEYGATE__LOGIN__CODES_PER_IP", "100");
        jail.set_env("KEYGATE__LOGIN__WINDOW", "1h");
        let s: Settings = Figment::new()
            .merge(Env::prefixed("KEYGATE__").split("__"))
            .extract()?;
        assert_eq!(
            s.smtp.url.as_ref().map(|u| u.expose_secret().to_owned()),
            Some("smtps://me:hunter2@mail.example.com".to_owned())
        );
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.login.codes_per_email, 3);
        assert_eq!(s.login.codes_per_ip, 100);
        assert_eq!(s.login.window, Duration::from_secs(3600));
        Ok(())
    });
}

#[test]
fn the_shipped_default_toml_says_what_the_defaults_are() {
    let shipped: Settings = Figment::new()
        .merge(Toml::string(include_str!("../../config/default.toml")))
        .extract()
        .unwrap();
    let login = LoginSettings::default();
    assert_eq!(shipped.login.codes_per_email, login.codes_per_email);
    assert_eq!(shipped.login.codes_per_ip, login.codes_per_ip);
    assert_eq!(shipped.login.window, login.window);
    assert_eq!(shipped.smtp.timeout, SmtpSettings::default().timeout);
    assert!(shipped.smtp.url.is_none());
}

#[test]
fn a_missing_named_file_is_an_error() {
    let err = Settings::figment(
        Path::new("nope.toml"),
        Some(Path::new("/nonexistent/kg.toml")),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile(_)));
}
