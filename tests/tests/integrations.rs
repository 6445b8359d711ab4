//! Integrations end to end: the shipped bots run as real `conclave bot …`
//! processes against the real relay, and members call them with slash
//! commands; webhooks arrive over real HTTP; an outgoing call reaches a
//! local HTTP service started here. The relay's files never hold a
//! command, a reply or a webhook payload.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_client::{Bot, Client, HistoryEntry, sign_webhook};
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, TempDir, now, workspace_binary};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// A logged-in bot home whose client is closed, for a `conclave` process.
async fn bot_home(server: &ServerProcess, name: &str, owner: &str) -> TempDir {
    let password = server.create_bot(name, owner);
    let Person { client, home } = Person::fresh(server, name).await;
    client.login(name, &password).await.unwrap();
    drop(client);
    home
}

/// `conclave --server … --home HOME ARGS`.
fn conclave(server: &ServerProcess, home: &TempDir) -> Command {
    let mut command = Command::new(workspace_binary("conclave"));
    command
        .arg("--server")
        .arg(&server.url)
        .arg("--pin-sha256")
        .arg(&server.fingerprint)
        .arg("--home")
        .arg(home.path());
    command
}

/// A `conclave bot …` process, killed when dropped.
struct BotProcess {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl BotProcess {
    /// Starts it and waits until it says it is answering.
    fn start(server: &ServerProcess, home: &TempDir, args: &[&str]) -> Self {
        let mut child = conclave(server, home)
            .arg("bot")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let process = Self { child, stderr };
        process.wait_for_line("is answering");
        process
    }

    /// The first stderr line containing `needle` (waits up to 60 s).
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the bot never printed {needle:?}: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, nothing flushed.
    fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Syncs `client` until `channel` exists and has a message `wanted` picks
/// (up to 60 s).
async fn wait_for(
    client: &Client,
    channel: &str,
    wanted: impl Fn(&HistoryEntry) -> bool,
) -> HistoryEntry {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        client.sync().await.unwrap();
        let history = match client.history(channel).await {
            Ok(history) => history,
            // A DM the other side opens shows up with its first message.
            Err(conclave_client::ClientError::NoSuchChannel(_)) => Vec::new(),
            Err(e) => panic!("{e}"),
        };
        if let Some(found) = history.iter().find(|e| wanted(e)) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never saw the message in {channel}: {history:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a slash command and returns the id of the message that carried it.
async fn run_command(client: &Client, channel: &str, line: &str) -> String {
    client.run_command(channel, line).await.unwrap();
    let history = client.history(channel).await.unwrap();
    let sent = history.last().expect("the command is in the history");
    assert_eq!(sent.text, line);
    sent.id.clone()
}

/// How many messages of `channel` `which` picks, after a last sync.
async fn count(client: &Client, channel: &str, which: impl Fn(&HistoryEntry) -> bool) -> usize {
    client.sync().await.unwrap();
    client
        .history(channel)
        .await
        .unwrap()
        .iter()
        .filter(|e| which(e))
        .count()
}

/// Asserts that no file of the relay holds any of `secrets`.
fn assert_relay_never_saw(server: &ServerProcess, secrets: &[&str]) {
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret:?} in clear",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slash_command_goes_round_trip_and_survives_a_bot_crash() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let home = bot_home(&server, "echo-bot", "alice").await;
    server.admin(&[
        "command",
        "add",
        "echo",
        "--bot",
        "echo-bot",
        "--usage",
        "/echo TEXT",
    ]);
    // No `help` in the registry: `/help` is asked of every bot in the
    // channel, and each shipped bot answers it.

    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "bob").await.unwrap();
    alice.client.invite("ops", "echo-bot").await.unwrap();
    let bot = BotProcess::start(&server, &home, &["echo"]);

    // Round trip: the answer comes back in the command's thread, for everyone.
    let command_id = run_command(&alice.client, "ops", "/echo ship the orchid release").await;
    let answer = wait_for(&bob.client, "ops", |e| e.sender == "echo-bot").await;
    assert_eq!(answer.text, "ship the orchid release");
    assert_eq!(answer.parent.as_deref(), Some(command_id.as_str()));
    let asked = alice.client.run_command("ops", "/help").await.unwrap();
    assert_eq!(
        asked.iter().map(|s| s.bot.as_str()).collect::<Vec<_>>(),
        ["echo-bot"]
    );
    let help = wait_for(&alice.client, "ops", |e| {
        e.sender == "echo-bot" && e.text.contains("answers")
    })
    .await;
    assert!(help.text.contains("/echo TEXT"), "{}", help.text);

    // Killed outright; a command sent meanwhile waits on the relay and is
    // answered once when the bot is back. The earlier one is not answered again.
    bot.kill_hard();
    alice
        .client
        .run_command("ops", "/echo sent while the bot was down")
        .await
        .unwrap();
    let bot = BotProcess::start(&server, &home, &["echo"]);
    wait_for(&alice.client, "ops", |e| {
        e.sender == "echo-bot" && e.text == "sent while the bot was down"
    })
    .await;
    // Time for a duplicate to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from_bot =
        |text: &'static str| move |e: &HistoryEntry| e.sender == "echo-bot" && e.text == text;
    assert_eq!(
        count(
            &alice.client,
            "ops",
            from_bot("sent while the bot was down")
        )
        .await,
        1
    );
    assert_eq!(
        count(&alice.client, "ops", from_bot("ship the orchid release")).await,
        1
    );
    drop(bot);

    assert_relay_never_saw(
        &server,
        &[
            "ship the orchid release",
            "sent while the bot was down",
            "echo-bot answers",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_run_again_after_a_crash_repeats_no_reply() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let home = bot_home(&server, "deploy-bot", "alice").await;
    server.admin(&["command", "add", "deploy", "--bot", "deploy-bot"]);
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "deploy-bot").await.unwrap();

    // First run: the handler answers once, then the bot dies before the
    // handler finishes (the task is dropped, as a crash would).
    let runs = Arc::new(AtomicU32::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = |runs: Arc<AtomicU32>, release: Arc<tokio::sync::Notify>| {
        move |request: conclave_client::Request| {
            let (runs, release) = (runs.clone(), release.clone());
            async move {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                request
                    .reply_in_thread(&format!("deploying {}", request.args()))
                    .await?;
                if run == 1 {
                    release.notified().await;
                    return Ok(());
                }
                request
                    .reply_in_thread(&format!("deployed {}", request.args()))
                    .await?;
                Ok(())
            }
        }
    };
    let client = server.client(home.path()).await;
    let first = Bot::new(client).command("deploy", handler(runs.clone(), release.clone()));
    let running = tokio::spawn(first.run());
    alice
        .client
        .run_command("ops", "/deploy web")
        .await
        .unwrap();
    wait_for(&alice.client, "ops", |e| e.text == "deploying web").await;
    running.abort();
    let _ = running.await;
    release.notify_one(); // the orphaned handler ends, and lets go of the home

    // Second run on the same home: the command is still waiting; its
    // handler runs again, and only the reply not sent before goes out.
    let client = loop {
        match Client::open(home.path(), server.transport()).await {
            Ok(client) => break client,
            Err(conclave_client::ClientError::HomeInUse(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // This run also has a message handler: it sees what people say (not
    // commands, not its own answers) and answers privately.
    let second = Bot::new(client)
        .command("deploy", handler(runs.clone(), release))
        .on_message(|message| async move {
            assert_eq!(message.command(), None);
            if message.args() == "is prod up?" {
                message
                    .reply_privately(&format!(
                        "{} asked in {}: prod is up",
                        message.sender(),
                        message.channel()
                    ))
                    .await?;
            }
            Ok(())
        });
    let running = tokio::spawn(second.run());
    wait_for(&alice.client, "ops", |e| e.text == "deployed web").await;
    alice.client.send("ops", "is prod up?").await.unwrap();
    let private = wait_for(&alice.client, "@deploy-bot", |e| e.sender == "deploy-bot").await;
    assert_eq!(private.text, "alice asked in ops: prod is up");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        count(&alice.client, "ops", |e| e.text == "deploying web").await,
        1
    );
    assert_eq!(
        count(&alice.client, "ops", |e| e.text == "deployed web").await,
        1
    );
    running.abort();
}

/// POSTs `body` to `url` with the given signature headers.
async fn post(url: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn signed(secret: &str, timestamp: u64, nonce: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-conclave-timestamp", timestamp.to_string()),
        ("x-conclave-nonce", nonce.to_owned()),
        (
            "x-conclave-signature",
            sign_webhook(secret, timestamp, nonce, body.as_bytes()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_post_signed_payloads_and_refuse_forgeries() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let home = bot_home(&server, "ci-bot", "alice").await;
    alice.client.create_channel("builds").await.unwrap();
    alice.client.invite("builds", "ci-bot").await.unwrap();
    {
        // The bot learns it is in the channel before a webhook can name it.
        let bot = server.client(home.path()).await;
        bot.sync().await.unwrap();
    }

    let added = conclave(&server, &home)
        .args(["bot", "webhook", "add", "ci", "builds", "--template"])
        .arg("CI {{build.status}} on {{branch}}: {{build.url}}")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let secret = String::from_utf8(added.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("cwh_"))
        .expect("the secret is printed")
        .to_owned();
    let listed = conclave(&server, &home)
        .args(["bot", "webhook", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("ci") && listed.contains("builds") && !listed.contains(&secret),
        "{listed}"
    );

    let bot = BotProcess::start(
        &server,
        &home,
        &["webhook", "serve", "--listen", "127.0.0.1:0"],
    );
    let address = bot.wait_for_line("webhooks at http://");
    let base = address
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches("/hooks/NAME")
        .to_owned();
    let url = format!("{base}/hooks/ci");

    let payload =
        r#"{"build":{"status":"passed","url":"https://ci.example/builds/4242"},"branch":"main"}"#;
    let headers = signed(&secret, now(), "nonce-0000000000000001", payload);
    let (status, answer) = post(&url, &headers, payload).await;
    assert_eq!(status, 200, "{answer}");
    let posted = wait_for(&alice.client, "builds", |e| e.sender == "ci-bot").await;
    assert_eq!(
        posted.text,
        "CI passed on main: https://ci.example/builds/4242"
    );

    // The same request again: a replay.
    let (status, answer) = post(&url, &headers, payload).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("replayed")),
        "{answer}"
    );
    // Forged: signed with another secret, or with the body changed.
    let forged = signed(
        "cwh_not-the-secret",
        now(),
        "nonce-0000000000000002",
        payload,
    );
    let (status, answer) = post(&url, &forged, payload).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("bad_signature")),
        "{answer}"
    );
    let tampered = payload.replace("passed", "failed");
    let (status, _) = post(
        &url,
        &signed(&secret, now(), "nonce-0000000000000003", payload),
        &tampered,
    )
    .await;
    assert_eq!(status, 401);
    // Unsigned, or signed long ago.
    let (status, answer) = post(&url, &[], payload).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("missing_signature")),
        "{answer}"
    );
    let old = signed(&secret, now() - 3600, "nonce-0000000000000004", payload);
    let (status, answer) = post(&url, &old, payload).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("stale_timestamp")),
        "{answer}"
    );
    // A webhook that does not exist; a payload the template cannot fill.
    let (status, _) = post(&format!("{base}/hooks/nope"), &headers, payload).await;
    assert_eq!(status, 404);
    let partial = r#"{"branch":"main"}"#;
    let (status, answer) = post(
        &url,
        &signed(&secret, now(), "nonce-0000000000000005", partial),
        partial,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("bad_payload")),
        "{answer}"
    );
    // Too large, signed or not: refused before anything else.
    let huge = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(conclave_client::MAX_WEBHOOK_BODY)
    );
    let (status, answer) = post(
        &url,
        &signed(&secret, now(), "nonce-0000000000000008", &huge),
        &huge,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("too_large")),
        "{answer}"
    );

    // Only the genuine request became a message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&alice.client, "builds", |e| e.sender == "ci-bot").await,
        1
    );

    // Removing the webhook stops its secret at once. Served over HTTPS
    // this time (with the relay's own certificate, for the test).
    drop(bot);
    let removed = conclave(&server, &home)
        .args(["bot", "webhook", "remove", "ci"])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let added = conclave(&server, &home)
        .args(["bot", "webhook", "add", "deploys", "builds"])
        .output()
        .unwrap();
    assert!(added.status.success());
    let deploy_secret = String::from_utf8(added.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("cwh_"))
        .unwrap()
        .to_owned();
    // A webhook follows its channel through a rename: it posts by group
    // id, not by the name it was made with.
    alice
        .client
        .rename_channel("builds", "releases")
        .await
        .unwrap();
    {
        let bot = server.client(home.path()).await;
        bot.sync().await.unwrap();
        let hooks = bot.webhooks().await.unwrap();
        let deploys = hooks.iter().find(|h| h.name == "deploys").unwrap();
        assert_eq!(deploys.channel, "releases");
    }
    let certificate = server.certificate();
    let key = server.key_dir().join("tls-key.pem");
    let bot = BotProcess::start(
        &server,
        &home,
        &[
            "webhook",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certificate.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let address = bot.wait_for_line("webhooks at https://");
    let base = address
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .trim_end_matches("/hooks/NAME")
        .replace("127.0.0.1", "localhost");
    // The relay's certificate serves the webhook endpoint here.
    let (https, _) = server.https_client();
    let send = |hook: &str, secret: &str, nonce: &str, body: &str| {
        let mut request = https
            .post(format!("{base}/hooks/{hook}"))
            .body(body.to_owned());
        for (name, value) in signed(secret, now(), nonce, body) {
            request = request.header(name, value);
        }
        request.send()
    };
    let old = send("ci", &secret, "nonce-0000000000000006", payload)
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 404);
    let deploy = r#"{"text":"web v2.7.1 deployed"}"#;
    let new = send("deploys", &deploy_secret, "nonce-0000000000000007", deploy)
        .await
        .unwrap();
    assert_eq!(new.status().as_u16(), 200);
    wait_for(&alice.client, "releases", |e| {
        e.text == "web v2.7.1 deployed"
    })
    .await;
    drop(bot);

    assert_relay_never_saw(
        &server,
        &[
            "ci.example/builds/4242",
            "CI passed",
            "\"branch\"",
            "v2.7.1 deployed",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outgoing_calls_reach_an_external_service_and_removed_bots_read_nothing_more() {
    // The external service: records what it is sent, answers with text.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let service = {
        let received = received.clone();
        axum::Router::new()
            .route(
                "/status",
                axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                    let received = received.clone();
                    async move {
                        let args = body["args"].as_str().unwrap_or_default().to_owned();
                        received.lock().unwrap().push(body);
                        axum::Json(json!({ "text": format!("{args}: build 42 is green") }))
                    }
                }),
            )
            // A service that answers far more than a chat message should carry.
            .route(
                "/flood",
                axum::routing::post(|| async { "y".repeat(10 * conclave_client::MAX_CALL_ANSWER) }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_url = format!("http://{}/status", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await });

    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let home = bot_home(&server, "status-bot", "alice").await;
    server.admin(&[
        "command",
        "add",
        "status",
        "--bot",
        "status-bot",
        "--usage",
        "/status SERVICE",
    ]);
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "status-bot").await.unwrap();
    server.admin(&["command", "add", "flood", "--bot", "status-bot"]);
    let spec = format!("status={service_url}");
    let flood = format!("flood={}", service_url.replace("/status", "/flood"));
    let bot = BotProcess::start(
        &server,
        &home,
        &["call", "--command", &spec, "--command", &flood],
    );

    alice
        .client
        .run_command("ops", "/status web-frontend")
        .await
        .unwrap();
    let answer = wait_for(&alice.client, "ops", |e| e.sender == "status-bot").await;
    assert_eq!(answer.text, "web-frontend: build 42 is green");
    assert!(answer.parent.is_some());
    let calls = received.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["command"], "status");
    assert_eq!(calls[0]["args"], "web-frontend");
    assert_eq!(calls[0]["user"], "alice");
    assert_eq!(calls[0]["channel"], "ops");
    assert!(calls[0]["id"].as_str().is_some_and(|id| id.len() == 32));
    // An answer over the cap is refused, and the caller told so, in the thread.
    alice.client.run_command("ops", "/flood").await.unwrap();
    let refused = wait_for(&alice.client, "ops", |e| {
        e.text.starts_with("/flood failed")
    })
    .await;
    assert!(
        refused.text.contains("more than 65536 bytes"),
        "{}",
        refused.text
    );
    assert!(refused.parent.is_some());

    // Removed from the channel, the bot can no longer be called, read what
    // is said there, or post in it.
    alice.client.remove("ops", "status-bot").await.unwrap();
    let refused = alice
        .client
        .run_command("ops", "/status db")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not in ops"), "{refused}");
    alice
        .client
        .send("ops", "the new launch date is the ninth")
        .await
        .unwrap();
    drop(bot);
    let bot = loop {
        match Client::open(home.path(), server.transport()).await {
            Ok(client) => break client,
            Err(conclave_client::ClientError::HomeInUse(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    bot.sync().await.unwrap();
    let seen = bot.history("ops").await.unwrap();
    assert!(
        seen.iter().all(|e| !e.text.contains("launch date")),
        "{seen:?}"
    );
    assert!(matches!(
        bot.send("ops", "still here?").await,
        Err(conclave_client::ClientError::NotInChannel(_))
    ));
    assert_eq!(received.lock().unwrap().len(), 1);

    assert_relay_never_saw(
        &server,
        &["web-frontend", "build 42 is green", "launch date"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_survive_a_bot_restart() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let home = bot_home(&server, "remind-bot", "alice").await;
    server.admin(&[
        "command",
        "add",
        "remind",
        "--bot",
        "remind-bot",
        "--usage",
        "/remind DURATION TEXT",
    ]);
    alice.client.create_channel("team").await.unwrap();
    alice.client.invite("team", "remind-bot").await.unwrap();
    let bot = BotProcess::start(&server, &home, &["remind"]);

    let command_id = run_command(&alice.client, "team", "/remind 4s water the ficus").await;
    let ack = wait_for(&alice.client, "team", |e| e.sender == "remind-bot").await;
    assert_eq!(ack.text, "I'll remind you in 4s.");
    alice
        .client
        .run_command("team", "/remind soon water")
        .await
        .unwrap();
    wait_for(&alice.client, "team", |e| {
        e.text.contains("is not a duration")
    })
    .await;
    // `/remind list` answers by DM: what is pending is nobody else's business.
    alice
        .client
        .run_command("team", "/remind list")
        .await
        .unwrap();
    let listed = wait_for(&alice.client, "@remind-bot", |e| e.sender == "remind-bot").await;
    assert!(
        listed.text.starts_with("Your reminders: in ")
            && listed.text.ends_with(": water the ficus"),
        "{}",
        listed.text
    );

    // Down before the reminder falls due; it is posted once it is back
    // (here as one of the bots `bot serve` runs together), in the channel
    // it was set in, though that was renamed meanwhile: the bot keeps the
    // channel's group id, not its name.
    bot.kill_hard();
    alice
        .client
        .channel_named("team")
        .await
        .unwrap()
        .rename("crew")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        count(&alice.client, "crew", |e| e.text.contains("reminder:")).await,
        0
    );
    let bot = BotProcess::start(&server, &home, &["serve", "--remind", "--echo"]);
    let reminder = wait_for(&alice.client, "crew", |e| e.text.contains("reminder:")).await;
    assert_eq!(reminder.text, "@alice reminder: water the ficus");
    assert_eq!(reminder.parent.as_deref(), Some(command_id.as_str()));
    assert_eq!(reminder.mentions, ["alice"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&alice.client, "crew", |e| e.text.contains("reminder:")).await,
        1
    );
    drop(bot);
    assert_relay_never_saw(&server, &["water the ficus"]);
}
