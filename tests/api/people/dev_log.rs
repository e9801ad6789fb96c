//! The real `keygate` binary with no SMTP server: on loopback it writes each code to its log
//! on one documented WARN line (what the CI browser test reads), and nowhere else; on a
//! public URL it says at start that email sign-in is off, and the page says so too.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;

use super::Browser;
use crate::binary::wait_for;
use crate::helpers::TestDatabase;

struct Keygate {
    child: Child,
    stderr: Arc<Mutex<String>>,
    url: String,
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(public_url: Option<&str>) -> Keygate {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(dir.path()).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.current_dir(dir.path())
        .env("KEYGATE__DATA_DIR", dir.path().join("data"))
        .env("KEYGATE__SERVER__BIND", "127.0.0.1:0")
        .env("KEYGATE__SERVER__WORKERS", "1")
        .env_remove("KEYGATE__SERVER__PUBLIC_URL")
        .env_remove("KEYGATE__SMTP__URL")
        .env_remove("KEYGATE_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = public_url {
        cmd.env("KEYGATE__SERVER__PUBLIC_URL", url);
    }
    if db.is_postgres() {
        cmd.env("KEYGATE__DATABASE__URL", &db.url);
    }
    let mut child = cmd.spawn().expect("start keygate");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    wait_for("the listening line", &stderr, |s| s.contains(" listening "));
    let url = {
        let log = stderr.lock().unwrap();
        let line = log.lines().find(|l| l.contains(" listening ")).unwrap();
        let at = line.find("address=").unwrap() + "address=".len();
        format!("http://{}", line[at..].split_whitespace().next().unwrap())
    };
    Keygate {
        child,
        stderr,
        url,
        _dir: dir,
        _db: db,
    }
}

#[tokio::test]
async fn on_loopback_without_smtp_the_code_is_one_warn_line_of_the_log() {
    let keygate = start(None).await;
    assert!(
        keygate
            .stderr
            .lock()
            .unwrap()
            .contains("sign-in codes are written to this log (development only)")
    );
    let mut browser = Browser::at(&keygate.url);
    // The bootstrap owner (`bootstrap.email`) signs in.
    let page = browser
        .ask_code("default", "owner@keygate.local", None)
        .await;
    let prefix = "login code for owner@keygate.local in org default: ";
    wait_for("the code's log line", &keygate.stderr, |s| {
        s.contains(prefix)
    });
    let log = keygate.stderr.lock().unwrap().clone();
    let line = log.lines().find(|l| l.contains(prefix)).unwrap();
    assert!(line.contains(" WARN "), "{line}");
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    let (code, tail) = rest.split_at(6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{line}");
    assert_eq!(tail, " (no SMTP configured; development only)", "{line}");
    // That line is the only one with the code.
    assert_eq!(log.matches(code).count(), 1, "{log}");

    let done = browser.submit_code("default", &page, code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(
        browser.signed_in_as("default").await.as_deref(),
        Some("owner@keygate.local")
    );
    // Nobody else's code is logged: someone who is not a user gets no line.
    Browser::at(&keygate.url)
        .ask_code("default", "nobody@example.com", None)
        .await;
    let again = Browser::at(&keygate.url)
        .ask_code("default", "owner@keygate.local", None)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    wait_for("the second code's line", &keygate.stderr, |s| {
        s.matches(prefix).count() == 2
    });
    assert!(
        !keygate
            .stderr
            .lock()
            .unwrap()
            .contains("nobody@example.com")
    );
}

#[tokio::test]
async fn on_a_public_url_without_smtp_email_sign_in_is_off_and_the_log_says_so() {
    let keygate = start(Some("https://keygate.example")).await;
    assert!(
        keygate
            .stderr
            .lock()
            .unwrap()
            .contains("people cannot sign in with an emailed code"),
        "{}",
        keygate.stderr.lock().unwrap()
    );
    let page = Browser::at(&keygate.url).get("/v1/default/login").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.html.contains("Email sign-in is not configured"));
}
