//! The real `keygate dpop proxy` binary: it listens on 127.0.0.1 unless `--listen` names
//! another address, says at start which key thumbprint it signs with, generates a missing
//! key file, logs one line per request, and refuses bad arguments with a message.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use clap::Parser;
use keygate::cli::{Cli, Command as Sub, DpopCommand};
use keygate::dpop_client::ClientKey;
use reqwest::StatusCode;

use crate::helpers::{json, spawn_app};

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Running, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["dpop", "proxy"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (Running(child), stdout)
}

fn line(reader: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// The `http://host:port` of the banner's "listening on".
fn listening(banner: &str) -> String {
    let rest = banner.split("listening on ").nth(1).expect(banner);
    rest.split(',').next().unwrap().to_owned()
}

#[test]
fn the_default_listen_address_is_loopback() {
    let cli = Cli::try_parse_from([
        "keygate",
        "dpop",
        "proxy",
        "--key",
        "k.pem",
        "--upstream",
        "http://127.0.0.1:8080",
    ])
    .unwrap();
    let Some(Sub::Dpop(DpopCommand::Proxy(args))) = cli.command else {
        panic!("not the proxy");
    };
    assert_eq!(args.listen.to_string(), "127.0.0.1:8081");
    assert!(
        Cli::try_parse_from([
            "keygate",
            "dpop",
            "proxy",
            "--key",
            "k",
            "--upstream",
            "u",
            "--listen",
            "nowhere"
        ])
        .is_err()
    );
}

#[tokio::test]
async fn the_binary_binds_loopback_names_its_key_and_logs_each_request() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("proxy.pem");
    let key_arg = key.to_str().unwrap();
    // A port alone: 127.0.0.1.
    let (_child, mut out) = start(&[
        "--key",
        key_arg,
        "--upstream",
        &app.address,
        "--listen",
        "0",
    ]);
    let banner = line(&mut out);
    let address = listening(&banner);
    assert!(address.starts_with("http://127.0.0.1:"), "{banner}");
    // The key file was made, and the banner names its thumbprint.
    let written = ClientKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert!(banner.contains(&written.thumbprint()), "{banner}");
    let _htu_line = line(&mut out);

    let (status, body) = json(
        app.client
            .post(format!(
                "{address}/v1/default/user/signin_with_api_key?x=secret-query"
            ))
            .header("x-api-key", &app.owner.api_key)
            .header("x-api-key-id", &app.owner.api_key_id)
            .header("x-user-id", &app.owner.user_id)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let logged = line(&mut out);
    assert!(
        logged.starts_with("POST /v1/default/user/signin_with_api_key 200 "),
        "{logged}"
    );
    assert!(!logged.contains("secret-query"), "{logged}");
}

#[test]
fn another_address_is_used_when_named_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let (mut child, mut out) = start(&[
        "--key",
        key.to_str().unwrap(),
        "--upstream",
        "http://127.0.0.1:1",
        "--listen",
        "0.0.0.0:0",
    ]);
    let banner = line(&mut out);
    assert!(
        listening(&banner).starts_with("http://0.0.0.0:"),
        "{banner}"
    );
    let _ = child.0.kill();
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn bad_arguments_exit_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    for (upstream, expected) in [
        ("ftp://127.0.0.1", "http or https"),
        ("http://127.0.0.1:8080/?q=1", "query"),
        ("not a url", "bad URL"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args([
                "dpop",
                "proxy",
                "--key",
                key.to_str().unwrap(),
                "--upstream",
                upstream,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{upstream}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{upstream}: {err}");
    }
    assert!(
        !key.exists(),
        "no key file is made for a request that cannot run"
    );
}
