//! `keygate login`, the real binary, against a running server: it prints where to approve,
//! polls until a person approves in a browser (started here with a session cookie), and
//! prints the tokens; as an API key client or as `keygate-cli` (no `--client-id`); DPoP
//! binding with a key file it creates; a denial; bad input. It reads
//! no configuration: each run is in a directory whose configuration file is broken.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use keygate::types::Role;
use serde_json::Value;

use super::browser;
use crate::helpers::{Credentials, TestApp, claims_of, spawn_app_with};

/// A `keygate login` run: its stderr lines as they come, and the process.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// Runs `keygate login {args}` in `dir` as `client`'s API key (`None`: the default client,
/// `keygate-cli`).
fn start(dir: &Path, client: Option<&Credentials>, args: &[&str]) -> Run {
    let config = dir.join("config");
    if !config.exists() {
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("default.toml"), "this is [[not toml").unwrap();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    command
        .arg("login")
        .current_dir(dir)
        .env_remove("KEYGATE_CONFIG")
        .env_remove("KEYGATE_CLIENT_SECRET");
    if let Some(client) = client {
        command
            .args(["--client-id", &client.api_key_id])
            // The secret from the environment, as the README advises (not in the process list).
            .env("KEYGATE_CLIENT_SECRET", &client.api_key);
    }
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keygate login");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            tx.send(line).ok();
        }
        all
    });
    Run {
        child,
        lines,
        stderr,
    }
}

impl Run {
    /// Waits (without blocking the server's runtime) for the line naming the user code.
    async fn user_code(self) -> (Self, String) {
        tokio::task::spawn_blocking(move || {
            loop {
                let line = self
                    .lines
                    .recv_timeout(Duration::from_secs(30))
                    .expect("keygate login printed no user code");
                if line.contains("enter the code") {
                    let code = line.rsplit(' ').next().unwrap().to_owned();
                    return (self, code);
                }
            }
        })
        .await
        .unwrap()
    }

    /// Waits for the process to exit: whether it succeeded, its stdout and its stderr.
    async fn finish(mut self) -> (bool, String, String) {
        tokio::task::spawn_blocking(move || {
            let mut stdout = String::new();
            self.child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            let status = self.child.wait().unwrap();
            (status.success(), stdout, self.stderr.join().unwrap())
        })
        .await
        .unwrap()
    }
}

async fn app() -> TestApp {
    // A poll a second, so the runs are quick.
    spawn_app_with(|s| s.device.interval = Duration::from_secs(1)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_login_prints_where_to_approve_and_then_the_tokens() {
    let app = app().await;
    let person = app.create_user("default", Role::Member).await;
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        dir.path(),
        Some(&app.owner),
        &[
            "--url",
            &app.address,
            "--org",
            "default",
            "--scope",
            "keys:read",
            "--json",
        ],
    );
    let (run, code) = run.user_code().await;
    browser(&app, "default", &person.user_id)
        .await
        .approve(&app, &code)
        .await;
    let (ok, stdout, stderr) = run.finish().await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "open {}/v1/default/device and enter the code {code}",
            app.address
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("/v1/default/device?user_code={code}")),
        "{stderr}"
    );
    assert!(!stderr.contains(&app.owner.api_key), "{stderr}");
    let tokens: Value = serde_json::from_str(stdout.trim()).expect("the token response");
    assert_eq!(tokens["scope"], "keys:read");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["sub"], person.user_id.as_str());
    let (status, me) = crate::helpers::json(app.me("default", access).await).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], person.user_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_login_binds_the_tokens_to_its_dpop_key_and_reports_a_denial() {
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("agent.pem");
    let base = ["--url", app.address.as_str(), "--org", "default"];
    let mut args = base.to_vec();
    args.extend(["--dpop-key", key_file.to_str().unwrap()]);
    // No --client-id: keygate-cli, the built-in public client.
    let (run, code) = start(dir.path(), None, &args).user_code().await;
    let owner = browser(&app, "default", &app.owner.user_id).await;
    owner.approve(&app, &code).await;
    let (ok, stdout, stderr) = run.finish().await;
    assert!(ok, "{stderr}");
    // Without --json: the access token alone on stdout, a summary on stderr.
    let token = stdout.trim();
    assert!(
        !token.contains('\n') && token.split('.').count() == 3,
        "{stdout}"
    );
    assert!(stderr.contains("a DPoP token"), "{stderr}");
    let key =
        keygate::dpop_client::ClientKey::from_pem(&std::fs::read_to_string(&key_file).unwrap())
            .unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(claims["client_id"], "keygate-cli");
    assert_eq!(claims["sub"], app.owner.user_id.as_str());

    let (run, code) = start(dir.path(), Some(&app.owner), &base).user_code().await;
    let (status, page) = owner.decide(&app, &code, "deny").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let (ok, stdout, stderr) = run.finish().await;
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("denied"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_login_explains_a_refusal_and_exits_with_failure() {
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = app.owner.clone();
    wrong.api_key = format!("{}x", &wrong.api_key[..wrong.api_key.len() - 1]);
    for (client, org, says) in [
        (&wrong, "default", "invalid_client"),
        (&app.owner, "nosuchorg", "nosuchorg"),
        (&app.owner, "default", "invalid_scope"),
    ] {
        let mut args = vec!["--url", app.address.as_str(), "--org", org];
        if says == "invalid_scope" {
            args.extend(["--scope", "no:such"]);
        }
        let (ok, stdout, stderr) = start(dir.path(), Some(client), &args).finish().await;
        assert!(!ok, "{says}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!stderr.contains(&app.owner.api_key), "{stderr}");
    }
}
