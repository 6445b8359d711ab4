//! Issue 16's rough edges, each as a new user met it: through the `conclave`
//! CLI and the relay binary where that is what the user runs, through
//! client-core where the CLI only prints what it says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write;
use std::process::{Command, Output, Stdio};

use conclave_client::{ClientError, Event};
use conclave_tests::ByName;
use conclave_tests::{Person, ServerProcess, TempDir, run_conclave, workspace_binary};

const PASSWORD: &str = "correct horse battery staple";

/// `conclave ARGS` with `home`, trusting `server`; `stdin` is its input.
fn conclave(server: &ServerProcess, home: &TempDir, args: &[&str], stdin: &str) -> Output {
    run_conclave(server, home.path(), args, stdin)
}

/// What a command printed, standard output then standard error.
fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A CLI user with a fresh home (key in clear: no one types here).
fn cli_user(server: &ServerProcess, name: &str) -> TempDir {
    let home = TempDir::new(name);
    let registered = conclave(
        server,
        &home,
        &["--password-stdin", "--unprotected-key", "register", name],
        &format!("{PASSWORD}\n"),
    );
    assert!(registered.status.success(), "{registered:?}");
    home
}

#[test]
fn admin_commands_refuse_a_directory_where_no_relay_started() {
    let elsewhere = TempDir::new("no-relay");
    let missing = elsewhere.path().join("conclave-data");
    let refused = Command::new(workspace_binary("conclave-server"))
        .arg("--data-dir")
        .arg(&missing)
        .args(["admin", "invite"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let text = said(&refused);
    assert!(
        text.contains("no relay data directory at") && text.contains(&*missing.to_string_lossy()),
        "{text}"
    );
    assert!(!missing.exists(), "nothing was created");

    // A directory that exists but where no relay ever ran: no database.
    let refused = Command::new(workspace_binary("conclave-server"))
        .arg("--data-dir")
        .arg(elsewhere.path())
        .args(["admin", "users"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("no relay database at"),
        "{refused:?}"
    );
    assert!(!elsewhere.path().join("conclave.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_come_from_stdin_or_a_file_and_blank_or_huge_ones_are_refused() {
    let server = ServerProcess::start();
    let alice = cli_user(&server, "alice");
    assert!(
        conclave(&server, &alice, &["channel", "create", "general"], "")
            .status
            .success()
    );

    let piped = conclave(
        &server,
        &alice,
        &["send", "general", "-"],
        "line one\nline two\n",
    );
    assert!(piped.status.success(), "{piped:?}");
    let notes = alice.path().join("notes.txt");
    std::fs::write(&notes, "from a file\n").unwrap();
    let from_file = conclave(
        &server,
        &alice,
        &["send", "general", "--file", notes.to_str().unwrap()],
        "",
    );
    assert!(from_file.status.success(), "{from_file:?}");

    let blank = conclave(&server, &alice, &["send", "general", "   "], "");
    assert!(!blank.status.success());
    assert!(said(&blank).contains("the message is empty"), "{blank:?}");
    let huge = conclave(
        &server,
        &alice,
        &["send", "general", "-"],
        &"x".repeat(20_000),
    );
    assert!(!huge.status.success());
    assert!(
        said(&huge).contains("19.5 KiB") && said(&huge).contains("at most 16 KiB"),
        "{huge:?}"
    );

    // Exactly the two good messages went; the line break stayed inside the
    // first (shown as U+FFFD, as every control character is).
    let history = said(&conclave(&server, &alice, &["history", "general"], ""));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines,
        [
            "#1 alice: line one\u{fffd}line two",
            "#2 alice: from a file"
        ],
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reactions_take_emoji_and_shortcodes_and_a_no_op_says_so() {
    let server = ServerProcess::start();
    let alice = cli_user(&server, "alice");
    assert!(
        conclave(&server, &alice, &["channel", "create", "general"], "")
            .status
            .success()
    );
    assert!(
        conclave(&server, &alice, &["send", "general", "ship it"], "")
            .status
            .success()
    );
    let run = |args: &[&str]| conclave(&server, &alice, args, "");

    let tada = run(&["react", "general", "1", ":tada:"]);
    assert!(tada.status.success(), "{tada:?}");
    assert_eq!(said(&tada).trim(), "reacted \u{1f389} on #1 in general");
    for refused in ["lol", ":no-such-emoji:"] {
        let output = run(&["react", "general", "1", refused]);
        assert!(!output.status.success(), "{refused}: {output:?}");
        assert!(said(&output).contains("emoji"), "{output:?}");
    }
    let again = run(&["react", "general", "1", "\u{1f389}"]);
    assert!(again.status.success());
    assert!(said(&again).contains("already reacted"), "{again:?}");
    let never = run(&["react", "general", "1", ":+1:", "--remove"]);
    assert!(never.status.success(), "{never:?}");
    assert!(
        said(&never).contains("you had not reacted \u{1f44d} on #1 in general; nothing changed"),
        "{never:?}"
    );

    // The no-ops sent nothing: the next message is #3 (the reaction was #2).
    let next = run(&["send", "general", "after"]);
    assert_eq!(said(&next).trim(), "sent to general (#3)");
    let history = said(&run(&["history", "general"]));
    assert!(
        history.contains("#1 alice: ship it  [\u{1f389} alice]"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_finds_a_channel_it_was_just_invited_to() {
    let server = ServerProcess::start();
    let bob = cli_user(&server, "bob");
    let alice = Person::register(&server, "alice", PASSWORD).await;
    // Each command meets a channel bob was invited to after his last
    // command, with no sync between: it finds the channel, and is refused
    // (if at all) for what bob may not do, not for a channel he cannot see.
    let mut fresh = 0;
    let mut invited = async |channel: &str| {
        fresh += 1;
        let channel = format!("{channel}-{fresh}");
        alice.client.create_channel(&channel).await.unwrap();
        alice.client.invite(&channel, "bob").await.unwrap();
        channel
    };
    for command in ["retention", "archive", "history-sharing"] {
        let channel = invited(command).await;
        let args: Vec<&str> = match command {
            "retention" => vec!["channel", "retention", &channel, "7"],
            "history-sharing" => vec!["channel", "history-sharing", &channel, "on"],
            _ => vec!["channel", command, &channel],
        };
        let output = conclave(&server, &bob, &args, "");
        assert!(!output.status.success());
        let text = said(&output);
        assert!(
            text.contains("creator or a workspace admin") && !text.contains("no channel named"),
            "{args:?}: {text}"
        );
    }
    let channel = invited("members").await;
    let members = conclave(&server, &bob, &["channel", "members", &channel], "");
    assert!(members.status.success(), "{members:?}");
    assert_eq!(said(&members), "alice (1 device)\nbob (1 device)\n");
    let channel = invited("topic").await;
    let topic = conclave(
        &server,
        &bob,
        &["channel", "topic", &channel, "found it"],
        "",
    );
    assert!(topic.status.success(), "{topic:?}");
    assert_eq!(said(&topic).trim(), format!("topic of {channel} set"));
    let channel = invited("rename").await;
    let renamed = conclave(
        &server,
        &bob,
        &["channel", "rename", &channel, "renamed"],
        "",
    );
    assert!(renamed.status.success(), "{renamed:?}");
    assert_eq!(
        said(&renamed).trim(),
        format!("renamed {channel} to renamed")
    );
    let channel = invited("leave").await;
    let left = conclave(&server, &bob, &["channel", "leave", &channel], "");
    assert!(left.status.success(), "{left:?}");
    assert_eq!(said(&left).trim(), format!("left {channel}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_say_what_is_wrong() {
    let server = ServerProcess::start();
    // A pin that is not the relay's: reached, but not trusted.
    let home = TempDir::new("wrong-pin");
    let wrong_pin = Command::new(workspace_binary("conclave"))
        .env_remove("CONCLAVE_HOME")
        .args([
            "--server",
            &server.url,
            "--pin-sha256",
            &"ab".repeat(32),
            "--home",
        ])
        .arg(home.path())
        .args([
            "--password-stdin",
            "--unprotected-key",
            "register",
            "mallory",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wrong_pin = {
        let mut child = wrong_pin;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(!wrong_pin.status.success());
    let text = said(&wrong_pin);
    assert!(
        text.contains("answered, but its certificate does not match the pinned fingerprint")
            && text.contains(&server.fingerprint),
        "{text}"
    );

    // A password too short is refused at once, before anything is asked twice.
    let short = TempDir::new("short");
    let output = conclave(
        &server,
        &short,
        &["--password-stdin", "--unprotected-key", "register", "carol"],
        "tooshort\n",
    );
    assert!(!output.status.success());
    assert!(
        said(&output).contains("10 to 1024 characters (this one has 8)"),
        "{output:?}"
    );

    // No terminal to ask for a password on: the flag that helps is named.
    // (`setsid` leaves the command without a controlling terminal, as
    // under a script or a service.)
    let detached = TempDir::new("detached");
    let no_terminal = Command::new("setsid")
        .arg("-w")
        .arg(workspace_binary("conclave"))
        .env_remove("CONCLAVE_HOME")
        .args([
            "--server",
            &server.url,
            "--pin-sha256",
            &server.fingerprint,
            "--home",
        ])
        .arg(detached.path())
        .args(["--unprotected-key", "register", "dave"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!no_terminal.status.success());
    assert!(
        said(&no_terminal).contains("pass --password-stdin"),
        "{no_terminal:?}"
    );

    // An unknown command, and a download of a message without a file.
    let alice = cli_user(&server, "alice");
    assert!(
        conclave(&server, &alice, &["channel", "create", "general"], "")
            .status
            .success()
    );
    assert!(
        conclave(&server, &alice, &["send", "general", "no file here"], "")
            .status
            .success()
    );
    let unknown = conclave(&server, &alice, &["run", "general", "/deploy", "web"], "");
    assert!(!unknown.status.success());
    assert!(
        said(&unknown).trim_end().ends_with(
            "unknown command /deploy: `conclave commands` lists this workspace's commands"
        ),
        "{unknown:?}"
    );
    let no_file = conclave(
        &server,
        &alice,
        &["download", "general", "1", alice.path().to_str().unwrap()],
        "",
    );
    assert!(!no_file.status.success());
    assert!(
        said(&no_file).contains("#1 in general has no file"),
        "{no_file:?}"
    );

    // An error quotes what it was given (or what the relay said): shown,
    // never obeyed by the terminal (no escape retitles or clears it).
    let escape = "mallory\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let refused = conclave(
        &server,
        &alice,
        &["channel", "share-history", "general", escape],
        "",
    );
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !text.contains(['\u{1b}', '\u{7}']),
        "the error reached the terminal raw: {text:?}"
    );
    assert_eq!(
        text,
        "conclave: mallory\u{fffd}]0;pwned\u{fffd}\u{fffd}[2J is not a member of general\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_to_a_reply_joins_the_thread_of_its_root() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = cli_user(&server, "carol");
    alice.client.create_channel("launch").await.unwrap();
    alice.client.invite("launch", "bob").await.unwrap();
    alice.client.invite("launch", "carol").await.unwrap();
    alice.client.send("launch", "the plan").await.unwrap();
    bob.client.sync().await.unwrap();
    let find = |history: Vec<conclave_client::HistoryEntry>, text: &str| {
        history
            .into_iter()
            .find(|e| e.text == text)
            .unwrap_or_else(|| panic!("no {text:?}"))
    };
    let root = find(bob.client.history("launch").await.unwrap(), "the plan");
    bob.client
        .reply("launch", &root.id, "a question")
        .await
        .unwrap();
    alice.client.sync().await.unwrap();
    let first_reply = find(alice.client.history("launch").await.unwrap(), "a question");
    alice
        .client
        .reply("launch", &first_reply.id, "an answer")
        .await
        .unwrap();

    // Through the CLI: a reply to the reply says the thread it joined is
    // the root's, and the thread of a reply is its root's whole thread.
    let replied = conclave(
        &server,
        &carol,
        &[
            "thread",
            "launch",
            &first_reply.seq.to_string(),
            "a follow-up",
        ],
        "",
    );
    assert!(replied.status.success(), "{replied:?}");
    let said_replied = said(&replied);
    assert!(
        said_replied.starts_with(&format!(
            "replied in the thread of #{} in launch (#",
            root.seq
        )),
        "{said_replied}"
    );
    let shown = conclave(
        &server,
        &carol,
        &["thread", "launch", &first_reply.seq.to_string()],
        "",
    );
    assert!(shown.status.success(), "{shown:?}");
    let lines: Vec<String> = said(&shown).lines().map(str::to_owned).collect();
    let texts: Vec<&str> = lines
        .iter()
        .map(|line| line.split_once(": ").map_or("", |(_, text)| text))
        .collect();
    assert_eq!(
        texts,
        ["the plan", "a question", "an answer", "a follow-up"],
        "{lines:?}"
    );
    assert!(
        lines[0].starts_with(&format!("#{} alice: ", root.seq)),
        "{lines:?}"
    );

    // Every receiving device files every reply under the root, and finds
    // the whole thread from any message in it.
    for client in [&alice.client, &bob.client] {
        client.sync().await.unwrap();
        for from in [&root.id, &first_reply.id] {
            let thread = client.thread("launch", from).await.unwrap();
            let texts: Vec<&str> = thread.iter().map(|e| e.text.as_str()).collect();
            assert_eq!(
                texts,
                ["the plan", "a question", "an answer", "a follow-up"]
            );
            assert!(
                thread[1..]
                    .iter()
                    .all(|e| e.parent.as_deref() == Some(root.id.as_str()))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_is_renamed_for_every_member_and_in_the_directory() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;
    let carol = Person::register(&server, "carol", PASSWORD).await;

    // A private channel: the new name travels encrypted, only to members.
    alice.client.create_channel("plans").await.unwrap();
    alice.client.invite("plans", "bob").await.unwrap();
    bob.client.sync().await.unwrap();
    alice
        .client
        .rename_channel("plans", "orchid-roadmap")
        .await
        .unwrap();
    let events = bob.client.sync().await.unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Renamed { from, to, by, .. } if from == "plans" && to == "orchid-roadmap" && by == "alice"
        )),
        "{events:?}"
    );
    let names: Vec<String> = bob
        .client
        .channels()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(
        names.contains(&"orchid-roadmap".to_owned()) && !names.contains(&"plans".to_owned()),
        "{names:?}"
    );
    bob.client.send("orchid-roadmap", "got it").await.unwrap();
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"orchid-roadmap"),
            "a private channel's name reached {}",
            file.display()
        );
    }

    // A public channel is renamed in the directory too; a name another
    // public channel has is refused before anything is sent.
    alice
        .client
        .create_public_channel("town", "everyone")
        .await
        .unwrap();
    alice
        .client
        .create_public_channel("hall", "")
        .await
        .unwrap();
    let town = carol.client.join("town").await.unwrap();
    // alice has a `hall` of her own: refused on her device.
    let taken = alice
        .client
        .rename_channel("town", "hall")
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, ClientError::ChannelExists(name) if name == "hall"),
        "{taken}"
    );
    // carol does not, but the directory does: the relay refuses, and no
    // rename reaches the channel.
    let taken = carol
        .client
        .rename_channel("town", "hall")
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, ClientError::Server { status: 409, .. }),
        "{taken}"
    );
    alice.client.sync().await.unwrap();
    assert!(
        alice
            .client
            .channels()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == "town")
    );
    alice.client.rename_channel("town", "square").await.unwrap();
    let listed: Vec<String> = carol
        .client
        .public_channels()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(
        listed.contains(&"square".to_owned()) && !listed.contains(&"town".to_owned()),
        "{listed:?}"
    );
    carol.client.sync().await.unwrap();
    carol.client.send("square", "hello square").await.unwrap();
    // carol's handle names the channel for good: its listing follows the
    // rename, while the name it was made with stays what it was.
    let info = town.info().await.unwrap();
    assert_eq!(
        (
            info.name.as_str(),
            info.topic.as_str(),
            info.group_id.as_str()
        ),
        ("square", "everyone", town.group_id())
    );
    assert!(info.active && !info.direct && !info.archived);
    assert_eq!(town.name(), "town");

    // A direct message is named after its people.
    alice.client.direct(&["bob"]).await.unwrap();
    let refused = alice
        .client
        .rename_channel("@bob", "secret")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("direct message"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_says_forever_and_an_empty_sync_prints_nothing() {
    let server = ServerProcess::start();
    let alice = cli_user(&server, "alice");
    assert!(
        conclave(&server, &alice, &["channel", "create", "general"], "")
            .status
            .success()
    );
    for (days, answer) in [
        ("forever", "general keeps messages forever"),
        ("0", "general keeps messages forever"),
        ("1", "general keeps messages for 1 day"),
        ("30", "general keeps messages for 30 days"),
        ("workspace", "general follows the workspace's retention"),
    ] {
        let output = conclave(
            &server,
            &alice,
            &["channel", "retention", "general", days],
            "",
        );
        assert!(output.status.success(), "{days}: {output:?}");
        assert_eq!(said(&output).trim(), answer);
    }
    let refused = conclave(
        &server,
        &alice,
        &["channel", "retention", "general", "soon"],
        "",
    );
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("give days, `forever`, or `workspace`"),
        "{refused:?}"
    );

    // Nothing new: nothing printed (no blank line for a script to read).
    conclave(&server, &alice, &["sync"], "");
    let quiet = conclave(&server, &alice, &["sync"], "");
    assert!(quiet.status.success());
    assert_eq!(said(&quiet), "", "{quiet:?}");
}
