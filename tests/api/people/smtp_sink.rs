//! A mail server for tests: a Tokio listener on 127.0.0.1 that speaks enough SMTP (RFC 5321
//! §4.1.1: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to take keygate's mail through
//! lettre, and records each message and each session's commands. It offers no STARTTLS and
//! no AUTH, so it also shows that keygate refuses to send in clear unless told to.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message (headers and body), dot-unstuffed (RFC 5321 §4.5.2), CRLF line ends.
    pub data: String,
}

impl Mail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.split("\r\n")
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
    }

    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The six-digit code on a line of its own in the body.
    pub fn code(&self) -> String {
        self.body()
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {:?}", self.data))
            .to_owned()
    }
}

#[derive(Default)]
struct Recorded {
    mails: Vec<Mail>,
    /// The commands of every finished session, in order.
    sessions: Vec<Vec<String>>,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    recorded: Arc<Mutex<Recorded>>,
    changed: Arc<Notify>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Self {
            port: listener.local_addr().unwrap().port(),
            recorded: Arc::default(),
            changed: Arc::default(),
        };
        let accepting = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = accepting.clone();
                tokio::spawn(async move { session.serve(stream).await });
            }
        });
        sink
    }

    /// `smtp.url` for keygate: plain SMTP to this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.recorded.lock().unwrap().mails.clone()
    }

    pub fn sessions(&self) -> Vec<Vec<String>> {
        self.recorded.lock().unwrap().sessions.clone()
    }

    /// Waits (up to 10 s) until `done` holds of what was recorded.
    async fn wait(&self, what: &str, done: impl Fn(&Recorded) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.changed.notified();
            if done(&self.recorded.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}");
            }
        }
    }

    /// The first message to `to`, waiting for it.
    pub async fn mail_to(&self, to: &str) -> Mail {
        self.mail_number(to, 1).await
    }

    /// The `n`-th message (from 1) to `to`, waiting for it.
    pub async fn mail_number(&self, to: &str, n: usize) -> Mail {
        let wanted = |m: &&Mail| m.to.iter().any(|t| t == to);
        self.wait(&format!("mail {n} to {to}"), |r| {
            r.mails.iter().filter(wanted).count() >= n
        })
        .await;
        self.mails()
            .iter()
            .filter(wanted)
            .nth(n - 1)
            .unwrap()
            .clone()
    }

    /// Waits until `n` sessions have ended.
    pub async fn wait_sessions(&self, n: usize) -> Vec<Vec<String>> {
        self.wait(&format!("{n} SMTP sessions"), |r| r.sessions.len() >= n)
            .await;
        self.sessions()
    }

    async fn serve(self, stream: TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut commands = Vec::new();
        let mut from = String::new();
        let mut to = Vec::new();
        let _ = write.write_all(b"220 sink.test ESMTP test sink\r\n").await;
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let command = line.trim_end().to_owned();
            commands.push(command.clone());
            let verb = command
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let path = |c: &str| {
                c.split_once(':')
                    .map(|(_, p)| p.trim().trim_start_matches('<'))
                    .and_then(|p| p.split('>').next())
                    .unwrap_or_default()
                    .to_owned()
            };
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-sink.test greets you\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                "HELO" | "NOOP" => b"250 OK\r\n",
                "MAIL" => {
                    from = path(&command);
                    to.clear();
                    b"250 OK\r\n"
                }
                "RCPT" => {
                    to.push(path(&command));
                    b"250 OK\r\n"
                }
                "RSET" => {
                    from.clear();
                    to.clear();
                    b"250 OK\r\n"
                }
                "DATA" => {
                    let _ = write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        match lines.read_line(&mut line).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                        // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    self.recorded.lock().unwrap().mails.push(Mail {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    self.changed.notify_waiters();
                    b"250 OK: queued\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 Bye\r\n").await;
                    break;
                }
                _ => b"502 Command not implemented\r\n",
            };
            if write.write_all(reply).await.is_err() {
                break;
            }
        }
        self.recorded.lock().unwrap().sessions.push(commands);
        self.changed.notify_waiters();
    }
}
