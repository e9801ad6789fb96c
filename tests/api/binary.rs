//! The real `keygate` binary, as a newcomer runs it: first start on an empty data
//! directory, sign-in with the printed credentials, restart, and configuration layering.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{TestDatabase, json};

/// A running `keygate serve` with its output captured.
pub(crate) struct Server {
    child: Child,
    pub(crate) stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads copying the output: they end when the process closes its pipes.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Where it listens (the public URL is configured to something else).
    pub(crate) url: String,
}

const PUBLIC_URL: &str = "https://keygate.example";

fn capture(
    stream: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (buf, reader)
}

pub(crate) fn wait_for(what: &str, buf: &Arc<Mutex<String>>, until: impl Fn(&str) -> bool) {
    let start = Instant::now();
    while !until(&buf.lock().unwrap()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {}",
            buf.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    pub(crate) fn start(data_dir: &Path, db: &TestDatabase) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
        cmd.current_dir(data_dir)
            .env("KEYGATE__DATA_DIR", data_dir.join("data"))
            .env("KEYGATE__SERVER__BIND", "127.0.0.1:0")
            .env("KEYGATE__SERVER__PUBLIC_URL", PUBLIC_URL)
            .env("KEYGATE__SERVER__WORKERS", "1")
            .env("RUST_LOG", "debug")
            .env_remove("KEYGATE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if db.is_postgres() {
            cmd.env("KEYGATE__DATABASE__URL", &db.url);
        }
        let mut child = cmd.spawn().expect("start keygate");
        let (stdout, out_reader) = capture(child.stdout.take().unwrap());
        let (stderr, err_reader) = capture(child.stderr.take().unwrap());
        wait_for("the listening line", &stderr, |s| s.contains(" listening "));
        let url = {
            let log = stderr.lock().unwrap();
            let line = log.lines().find(|l| l.contains(" listening ")).unwrap();
            assert!(line.contains(&format!("public_url={PUBLIC_URL}")), "{line}");
            let at = line.find("address=").unwrap() + "address=".len();
            format!("http://{}", line[at..].split_whitespace().next().unwrap())
        };
        Self {
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            url,
        }
    }

    /// Sends `signal` (`TERM`, `INT`); the server must stop by itself with success.
    pub(crate) fn stop(mut self, signal: &str) -> (String, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no graceful stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "keygate exited with {exit}");
        // Every line is in once the readers have seen the pipes close.
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        (stdout, stderr)
    }
}

pub(crate) fn banner_value(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` in {stdout}"))
        .trim()
        .to_owned()
}

/// Every byte under `dir`, lossily as text (the SQLite file, its WAL, secrets).
fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out += &read_tree(&path);
        } else {
            out += &String::from_utf8_lossy(&std::fs::read(&path).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn newcomer_path_restart_and_no_secret_at_rest_or_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(&dir.path().join("data")).await;
    let client = reqwest::Client::new();

    // First start: bootstrap credentials are printed once, with a curl line.
    let server = Server::start(dir.path(), &db);
    wait_for("the bootstrap banner", &server.stdout, |s| {
        s.contains("x-user-id: usr_")
    });
    let stdout = server.stdout.lock().unwrap().clone();
    let api_key = banner_value(&stdout, "api_key:");
    let api_key_id = banner_value(&stdout, "api_key_id:");
    let user_id = banner_value(&stdout, "user_id:");
    assert!(stdout.contains(&format!(
        "curl -sX POST {PUBLIC_URL}/v1/default/user/signin_with_api_key"
    )));
    if !db.is_postgres() {
        assert!(
            dir.path().join("data/keygate.db").exists(),
            "SQLite file under the data dir"
        );
    }
    for secret in ["pepper", "kek"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/secrets").join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }

    let signin = |url: String| {
        let client = client.clone();
        let (k, i, u) = (api_key.clone(), api_key_id.clone(), user_id.clone());
        async move {
            json(
                client
                    .post(format!("{url}/v1/default/user/signin_with_api_key"))
                    .header("x-api-key", k)
                    .header("x-api-key-id", i)
                    .header("x-user-id", u)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, body) = signin(server.url.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["id_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, me) = json(
        client
            .get(format!("{}/v1/default/user/me", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["role"], "owner");
    // A key created with an `Idempotency-Key` (its response is remembered in the database)
    // and a revoked access token (remembered until it expires): neither secret may be
    // stored in plain text.
    let idempotent = |url: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .post(format!("{url}/v1/default/api_keys"))
                .bearer_auth(token)
                .header("idempotency-key", "secrets-at-rest")
                .json(&serde_json::json!({"name": "idempotent", "duration": "1d"}))
                .send()
                .await
                .unwrap()
        }
    };
    let (status, created) = json(idempotent(server.url.clone()).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let idempotent_secret = created["api_key"].as_str().unwrap().to_owned();
    let (status, replayed) = json(idempotent(server.url.clone()).await).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a secret is never replayed: {replayed}"
    );
    assert!(!replayed.to_string().contains(&idempotent_secret));
    let (status, other) = json(
        client
            .post(format!("{}/v1/default/oauth/token", server.url))
            .basic_auth(&api_key_id, Some(&api_key))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let revoked_access = other["access_token"].as_str().unwrap().to_owned();
    let res = client
        .post(format!("{}/v1/default/oauth/revoke", server.url))
        .basic_auth(&api_key_id, Some(&api_key))
        .form(&[("token", revoked_access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let jwks_before = client
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, first_log) = server.stop("TERM");
    assert!(first_log.contains("SIGTERM received; stopping gracefully"));
    assert!(
        first_log.contains("request_id="),
        "request ids in the log lines"
    );

    // Restart on the same data dir: no second bootstrap; keys, users, signing keys survive.
    let server = Server::start(dir.path(), &db);
    let (status, body) = signin(server.url.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwks_after = client
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after);
    // The token issued before the restart still verifies (same signing key, same session).
    let res = client
        .get(format!("{}/v1/default/user/me", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (second_out, second_log) = server.stop("INT");
    assert!(second_log.contains("SIGINT received; stopping gracefully"));
    assert!(
        !second_out.contains("api_key:"),
        "the bootstrap ran again: {second_out}"
    );

    // Secrets: nowhere in the logs, nowhere in the database or the data directory.
    let logs = first_log + &second_log;
    let at_rest = db.dump().await + &read_tree(&dir.path().join("data"));
    for secret in [
        api_key.as_str(),
        refresh.as_str(),
        body["refresh_token"].as_str().unwrap(),
        idempotent_secret.as_str(),
        revoked_access.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(
            !at_rest.contains(secret),
            "a secret is stored in plain text"
        );
    }
    assert!(
        at_rest.contains(&api_key_id),
        "the dump is real: it holds the public key id"
    );
    assert!(
        at_rest.contains("secrets-at-rest"),
        "the dump holds the remembered idempotent request"
    );
}

#[test]
fn environment_overrides_the_config_file_and_bad_config_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keygate.toml");
    std::fs::write(&file, "data_dir = \"from-file\"\n[log]\nlevel = \"warn\"\n").unwrap();
    let migrate = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
        cmd.arg("migrate")
            .current_dir(dir.path())
            .env_remove("KEYGATE__DATA_DIR")
            .env_remove("KEYGATE__DATABASE__URL")
            .env("KEYGATE_CONFIG", &file);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };

    let out = migrate(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("from-file/keygate.db").exists(),
        "the file's data_dir is used"
    );

    let out = migrate(&[("KEYGATE__DATA_DIR", "from-env")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("from-env/keygate.db").exists(),
        "the variable wins over the file"
    );

    let out = migrate(&[("KEYGATE__TOKENS__ACESS_TTL", "1m")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("acess_ttl"));

    let out = migrate(&[("KEYGATE_CONFIG", "/nonexistent/keygate.toml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keygate.toml"));

    let out = migrate(&[("KEYGATE__TOKENS__ACCESS_TTL", "soon")]);
    assert_eq!(out.status.code(), Some(2));
}
