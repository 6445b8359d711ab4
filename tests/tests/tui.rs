//! `conclave tui` end to end: the real relay, the real `conclave` binary for
//! two people, each running the terminal UI inside tmux. Keys are typed into
//! alice's UI with `tmux send-keys`; what bob's UI shows is read back with
//! `tmux capture-pane`, without a key pressed on his side.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use conclave_tests::{RawDevice, ServerProcess, TempDir, TotpApp, workspace_binary};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
/// How long a screen may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// A tmux server of this test's own (its own socket, so parallel runs never
/// meet), killed with every UI in it when dropped, pass or fail.
struct Tmux {
    socket: String,
    config: TempDir,
}

impl Tmux {
    fn start() -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!("`tmux -V` failed: {output:?}"),
            Err(e) => panic!(
                "tmux is required for this test, which drives `conclave tui` in a real \
                 terminal: install it (apt-get install tmux). Running it failed: {e}"
            ),
        }
        let config = TempDir::new("tmux");
        // A pane whose program ends stays, so its exit status can be read.
        std::fs::write(
            config.path().join("tmux.conf"),
            "set -g remain-on-exit on\n",
        )
        .unwrap();
        let socket = format!(
            "conclave-tui-{}-{}",
            std::process::id(),
            config
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .rsplit('-')
                .next()
                .unwrap()
        );
        Self { socket, config }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // Not nested in the tmux this may run under, and the UIs take
            // their relay from their home, not from the caller's environment.
            .env_remove("TMUX")
            .env_remove("CONCLAVE_SERVER")
            .env_remove("CONCLAVE_HOME")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg(self.config.path().join("tmux.conf"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.tmux(args);
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A detached 160x45 terminal named `name` running `command`. The
    /// shell around it writes the command's exit status to a file: tmux
    /// can mark a pane dead before it has reaped the status, and under load
    /// that wait was seen to outlast the test's patience.
    fn open(&self, name: &str, command: &str) {
        let status = self.status_file(name);
        let _ = std::fs::remove_file(&status);
        let command = format!("{command}; echo $? > '{}'", status.display());
        let command = command.as_str();
        self.ok(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "45",
            command,
        ]);
    }

    /// Where the program in `name` leaves its exit status.
    fn status_file(&self, name: &str) -> PathBuf {
        self.config.path().join(format!("{name}.status"))
    }

    fn screen(&self, name: &str) -> String {
        self.ok(&["capture-pane", "-p", "-t", name])
    }

    /// Waits until `name`'s screen satisfies `test`; returns that screen.
    fn wait_for(&self, name: &str, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(name);
            if test(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s screen did not show {what} within {PATIENCE:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `text` is on `name`'s screen.
    fn wait_for_text(&self, name: &str, text: &str) -> String {
        self.wait_for(name, &format!("{text:?}"), |screen| screen.contains(text))
    }

    /// Types `line` into `name`'s composer and presses Enter.
    fn type_line(&self, name: &str, line: &str) {
        self.ok(&["send-keys", "-t", name, "-l", line]);
        self.ok(&["send-keys", "-t", name, "Enter"]);
    }

    fn press(&self, name: &str, key: &str) {
        self.ok(&["send-keys", "-t", name, key]);
    }

    /// Waits until the program in `name` has ended; returns `pane_state`.
    /// Should it not end, the failure shows how its pane ended (a signal?)
    /// or, if it still runs, where each of its threads is (with gdb).
    fn wait_for_exit(&self, name: &str) -> (bool, Option<i32>) {
        let pid = self.ok(&["list-panes", "-t", name, "-F", "#{pane_pid}"]);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(code) = std::fs::read_to_string(self.status_file(name))
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                return (true, Some(code));
            }
            // tmux sees the terminal close a moment before it reaps the
            // exit status: wait for the status itself.
            let state = self.pane_state(name);
            if state.1.is_some() {
                return state;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let ended = self.ok(&[
            "list-panes",
            "-t",
            name,
            "-F",
            "dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}",
        ]);
        let threads = Command::new("gdb")
            .args(["-p", pid.trim(), "-batch", "-ex", "thread apply all bt"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_else(|e| format!("(no backtrace: gdb: {e})"));
        panic!(
            "{name}'s program (pid {}) did not exit within {PATIENCE:?}: {}\n{threads}\nscreen:\n{}",
            pid.trim(),
            ended.trim(),
            self.screen(name)
        );
    }

    /// `(dead, exit status)` of `name`'s only pane.
    fn pane_state(&self, name: &str) -> (bool, Option<i32>) {
        let state = self.ok(&[
            "list-panes",
            "-t",
            name,
            "-F",
            "#{pane_dead} #{pane_dead_status}",
        ]);
        let mut words = state.split_whitespace();
        let dead = words.next() == Some("1");
        (dead, words.next().and_then(|s| s.parse().ok()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Runs `conclave --home HOME ARGS` to completion, asserting success.
fn conclave(server: &ServerProcess, home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let output = conclave_output(server, home, args, stdin);
    assert!(output.status.success(), "conclave {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `conclave --home HOME ARGS` to completion, whatever its outcome.
fn conclave_output(
    server: &ServerProcess,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    conclave_tests::run_conclave(server, home, args, stdin.unwrap_or(""))
}

/// The shell command that starts the UI for `home` (the relay's address
/// and pin were remembered there at registration).
fn tui_command(home: &Path) -> String {
    let binary = workspace_binary("conclave");
    for path in [binary.as_path(), home] {
        assert!(
            !path.to_string_lossy().contains('\''),
            "no quotes in {path:?}"
        );
    }
    format!("'{}' --home '{}' tui", binary.display(), home.display())
}

/// The number (`#6`) of the message whose text is `text` on a screen.
fn seq_of(screen: &str, author: &str, text: &str) -> u64 {
    let needle = format!("{author}: {text}");
    let line = screen
        .lines()
        .find(|line| line.contains(&needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"));
    let before = &line[..line.find(&needle).unwrap()];
    before
        .split_whitespace()
        // The pane's border may touch the first word: `│#6`.
        .filter_map(|word| word.split_once('#')?.1.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no message number on {line:?}"))
}

/// The screen line that holds `text`.
fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen
        .lines()
        .find(|line| line.contains(text))
        .unwrap_or_else(|| panic!("{text:?} not on screen:\n{screen}"))
}

#[test]
fn two_people_chat_live_in_the_terminal_ui() {
    let tmux = Tmux::start();
    let server = ServerProcess::start();
    let alice = TempDir::new("tui-alice");
    let bob = TempDir::new("tui-bob");
    let passwords = format!("{PASSWORD}\n{PASSWORD}\n");
    for (home, user) in [(&alice, "alice"), (&bob, "bob")] {
        conclave(
            &server,
            home.path(),
            &["--password-stdin", "--unprotected-key", "register", user],
            Some(&passwords),
        );
    }
    for args in [
        &["channel", "create", "general"][..],
        &["channel", "invite", "general", "bob"],
        &["channel", "create", "random"],
        &["channel", "invite", "random", "bob"],
        &["channel", "topic", "general", "launch prep"],
        &["send", "general", "hello from the cli"],
    ] {
        conclave(&server, alice.path(), args, None);
    }

    // Bob has never synced: his UI joins both channels as it starts.
    tmux.open("alice", &tui_command(alice.path()));
    tmux.open("bob", &tui_command(bob.path()));
    let screen = tmux.wait_for("bob", "both channels and the first message", |s| {
        s.contains("hello from the cli") && s.contains("random") && !s.contains("syncing")
    });
    assert!(
        line_with(&screen, "bob \u{2502}").contains("general \u{2014} launch prep"),
        "the header shows the user, the channel and its topic:\n{screen}"
    );
    assert!(
        screen.contains("> general"),
        "general is selected:\n{screen}"
    );
    tmux.wait_for("alice", "her history", |s| {
        s.contains("hello from the cli") && !s.contains("syncing")
    });

    // A message typed by alice appears on bob's screen by itself.
    tmux.type_line("alice", "hello bob, live from the tui");
    tmux.wait_for_text("bob", "alice: hello bob, live from the tui");

    // A message in the other channel shows as unread in bob's list.
    tmux.press("alice", "Tab");
    tmux.wait_for_text("alice", "message random");
    tmux.type_line("alice", "over in random");
    tmux.wait_for_text("alice", "alice: over in random");
    tmux.wait_for_text("bob", "random (1)");
    tmux.press("alice", "BTab");
    // The composer's title changes before the history has loaded.
    let screen = tmux.wait_for("alice", "general's history again", |s| {
        s.contains("message general") && s.contains("alice: hello bob, live from the tui")
    });
    let seq = seq_of(&screen, "alice", "hello bob, live from the tui");

    // Reactions, edits and thread replies reach bob live.
    tmux.type_line("alice", &format!("/react {seq} :tada:"));
    // The shortcode travels as its emoji.
    let screen = tmux.wait_for_text("bob", "\u{1f389} 1");
    assert!(
        line_with(&screen, "\u{1f389} 1").contains("(alice)"),
        "{screen}"
    );
    tmux.type_line(
        "alice",
        &format!("/edit {seq} hello bob, edited in the tui"),
    );
    let screen = tmux.wait_for_text("bob", "hello bob, edited in the tui");
    let edited = line_with(&screen, "hello bob, edited in the tui");
    assert!(edited.contains("(edited)"), "{edited}");
    assert!(edited.contains(&format!("#{seq} ")), "{edited}");
    assert!(!screen.contains("live from the tui"), "{screen}");

    tmux.type_line("alice", &format!("/reply {seq} an answer in the thread"));
    let screen = tmux.wait_for_text("bob", "alice: an answer in the thread");
    assert!(
        line_with(&screen, "an answer in the thread").contains(&format!("\u{21b3} #{seq}")),
        "the reply names its thread:\n{screen}"
    );
    assert!(
        line_with(&screen, "hello bob, edited in the tui").contains("[1 reply"),
        "the parent counts its replies:\n{screen}"
    );

    // Mistakes are one line of error in alice's UI; nothing is sent, and it
    // keeps running.
    tmux.type_line("alice", "/frobnicate now");
    tmux.wait_for_text("alice", "error: unknown command /frobnicate");
    tmux.type_line("alice", "/react twelve :tada:");
    tmux.wait_for_text("alice", "error: usage: /react N EMOJI");
    tmux.type_line("alice", "/join nosuch");
    tmux.wait_for_text("alice", "error: no channel named \"nosuch\"");
    tmux.type_line("alice", "still running after those errors");
    let screen = tmux.wait_for_text("bob", "alice: still running after those errors");
    assert!(!screen.contains("frobnicate"), "{screen}");
    assert!(!screen.contains("twelve"), "{screen}");
    assert_eq!(tmux.pane_state("alice"), (false, None));

    // Bob searches his own device's index.
    tmux.type_line("bob", "/search edited");
    let screen = tmux.wait_for_text("bob", "[general] #");
    assert!(screen.contains("search: edited \u{b7} 1 found"), "{screen}");
    let found = line_with(&screen, "[general] #");
    assert!(
        found.contains(&format!("#{seq} ")) && found.contains("hello bob, edited in the tui"),
        "{screen}"
    );
    tmux.press("bob", "Escape");
    tmux.wait_for("bob", "the channel again", |s| {
        !s.contains("search: edited") && s.contains("still running after those errors")
    });

    // A new topic reaches bob's header.
    tmux.type_line("alice", "/topic countdown at T-1");
    tmux.wait_for_text("bob", "general \u{2014} countdown at T-1");

    // Alice shares a file (its path quoted: it has a space); bob's UI shows
    // it by itself, and he saves it where he says, checked against its hash.
    let files = TempDir::new("tui-files");
    let original: Vec<u8> = (0..1_300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let upload = files.path().join("launch plan.bin");
    std::fs::write(&upload, &original).unwrap();
    tmux.type_line(
        "alice",
        &format!("/upload \"{}\" the launch plan", upload.display()),
    );
    tmux.wait_for_text("alice", "shared launch plan.bin in general (#");
    let screen = tmux.wait_for_text("bob", "[file: launch plan.bin (1.3 MB)]");
    let file_seq = seq_of(&screen, "alice", "the launch plan");
    let downloads = TempDir::new("tui-downloads");
    let download = format!("/download {file_seq} \"{}\"", downloads.path().display());
    tmux.type_line("bob", &download);
    let saved = downloads.path().join("launch plan.bin");
    let screen = tmux.wait_for_text("bob", "SHA-256 verified");
    assert!(
        line_with(&screen, "SHA-256 verified").contains(&format!(
            "saved {} (1.3 MB, SHA-256 verified)",
            saved.display()
        )),
        "bob's status line names the saved file:\n{screen}"
    );
    assert!(
        std::fs::read(&saved).unwrap() == original,
        "the saved file is the one alice shared"
    );
    // Saving it again would overwrite it; a message without a file has
    // nothing to save. Each is one line of error, and the UI keeps running.
    tmux.type_line("bob", &download);
    tmux.wait_for_text("bob", "error: ");
    let screen = tmux.screen("bob");
    assert!(
        line_with(&screen, "error: ").contains("already exists"),
        "{screen}"
    );
    tmux.type_line("bob", &format!("/download {seq}"));
    tmux.wait_for_text("bob", &format!("error: message #{seq} has no file"));
    assert_eq!(std::fs::read(&saved).unwrap(), original);
    assert_eq!(tmux.pane_state("bob"), (false, None));

    // A public channel: alice creates it in her UI, bob finds it with
    // /browse and joins it on his own.
    tmux.type_line("alice", "/create lobby --public all hands here");
    tmux.wait_for_text("alice", "created public channel lobby");
    tmux.type_line("bob", "/browse");
    let screen = tmux.wait_for_text("bob", "public channels \u{b7} 1 listed");
    let listed = line_with(&screen, "lobby");
    assert!(
        listed.contains("lobby  (1 member)  all hands here"),
        "name, members, topic and not [joined]:\n{screen}"
    );
    tmux.type_line("bob", "/join lobby");
    let screen = tmux.wait_for_text("bob", "bob \u{2502} lobby \u{2014} all hands here");
    assert!(
        screen.contains("> lobby"),
        "lobby is listed and selected:\n{screen}"
    );
    tmux.type_line("bob", "/browse");
    let screen = tmux.wait_for_text("bob", "[joined]");
    assert!(
        line_with(&screen, "[joined]").contains("lobby  (2 members)  [joined]  all hands here"),
        "{screen}"
    );
    tmux.press("bob", "Escape");
    tmux.wait_for_text("bob", "message lobby");
    // Both see the other live in the new channel.
    tmux.type_line("bob", "hello lobby");
    tmux.wait_for_text("alice", "bob: hello lobby");
    tmux.type_line("alice", "welcome, bob");
    tmux.wait_for_text("bob", "alice: welcome, bob");

    // Both leave: /quit and Ctrl-C. Each exits 0 and gives back a terminal
    // that holds no message text.
    tmux.type_line("alice", "/quit");
    tmux.press("bob", "C-c");
    for name in ["alice", "bob"] {
        assert_eq!(tmux.wait_for_exit(name), (true, Some(0)), "{name}");
        let screen = tmux.screen(name);
        assert!(!screen.contains("hello from the cli"), "{name}:\n{screen}");
    }
}

#[test]
fn workspace_commands_complete_and_reach_their_bot_from_the_terminal_ui() {
    let tmux = Tmux::start();
    let server = ServerProcess::start();
    let alice = TempDir::new("tui-cmd-alice");
    let bot = TempDir::new("tui-cmd-bot");
    let passwords = format!("{PASSWORD}\n{PASSWORD}\n");
    conclave(
        &server,
        alice.path(),
        &["--password-stdin", "--unprotected-key", "register", "alice"],
        Some(&passwords),
    );
    let password = server.create_bot("echo-bot", "alice");
    conclave(
        &server,
        bot.path(),
        &["--password-stdin", "--unprotected-key", "login", "echo-bot"],
        Some(&format!("{password}\n")),
    );
    server.admin(&[
        "command",
        "add",
        "echo",
        "--bot",
        "echo-bot",
        "--usage",
        "/echo TEXT",
    ]);
    for args in [
        &["channel", "create", "ops"][..],
        &["channel", "invite", "ops", "echo-bot"],
    ] {
        conclave(&server, alice.path(), args, None);
    }
    let binary = workspace_binary("conclave");
    tmux.open(
        "bot",
        &format!(
            "'{}' --home '{}' bot echo",
            binary.display(),
            bot.path().display()
        ),
    );
    tmux.wait_for_text("bot", "is answering");
    tmux.open("alice", &tui_command(alice.path()));
    tmux.wait_for("alice", "her channel", |s| {
        s.contains("> ops") && !s.contains("syncing")
    });

    // While the name is typed, the commands that fit show with their usage
    // (the workspace's and the UI's own); Tab completes it.
    tmux.ok(&["send-keys", "-t", "alice", "-l", "/ec"]);
    // Until the composer shows all three keys, the hint may still be the
    // one for `/e` (seen once under load), which rightly lists /edit too.
    let screen = tmux.wait_for("alice", "/ec with its hint", |s| {
        s.contains("\u{2502}/ec ") && s.contains("/echo TEXT")
    });
    assert!(
        !screen.contains("/edit N TEXT"),
        "only what fits /ec:\n{screen}"
    );
    tmux.press("alice", "Tab");
    tmux.wait_for_text("alice", "\u{2502}/echo ");
    tmux.type_line("alice", "typed in the terminal ui");
    let screen = tmux.wait_for_text("alice", "echo-bot: typed in the terminal ui");
    let command = seq_of(&screen, "alice", "/echo typed in the terminal ui");
    assert!(
        line_with(&screen, "echo-bot: typed in the terminal ui")
            .contains(&format!("#{command} \u{b7}")),
        "the answer is in the command's thread:\n{screen}"
    );
    // A command nobody registered: one line, nothing sent.
    tmux.type_line("alice", "/frobnicate now");
    tmux.wait_for_text("alice", "unknown command /frobnicate");
    tmux.type_line("alice", "/quit");
}

#[test]
fn a_draft_stays_with_its_channel_in_the_terminal_ui() {
    let tmux = Tmux::start();
    let server = ServerProcess::start();
    let alice = TempDir::new("tui-draft-alice");
    conclave(
        &server,
        alice.path(),
        &["--password-stdin", "--unprotected-key", "register", "alice"],
        Some(&format!("{PASSWORD}\n{PASSWORD}\n")),
    );
    for channel in ["general", "random"] {
        conclave(&server, alice.path(), &["channel", "create", channel], None);
    }
    tmux.open("alice", &tui_command(alice.path()));
    tmux.wait_for("alice", "her channels", |s| {
        s.contains("> general") && s.contains("random") && !s.contains("syncing")
    });

    // Typed in general, not sent; then off to random.
    tmux.ok(&[
        "send-keys",
        "-t",
        "alice",
        "-l",
        "half a thought for general",
    ]);
    tmux.wait_for_text("alice", "\u{2502}half a thought for general");
    tmux.press("alice", "Tab");
    let screen = tmux.wait_for_text("alice", "message random");
    assert!(
        !screen.contains("half a thought"),
        "random's composer starts empty:\n{screen}"
    );
    // Enter there sends nothing of general's draft; what is typed there
    // goes there.
    tmux.press("alice", "Enter");
    tmux.type_line("alice", "only for random");
    let screen = tmux.wait_for_text("alice", "alice: only for random");
    assert!(!screen.contains("half a thought"), "{screen}");

    // Back in general, the draft is waiting, still unsent.
    tmux.press("alice", "BTab");
    let screen = tmux.wait_for("alice", "general with its draft", |s| {
        s.contains("message general") && s.contains("half a thought for general")
    });
    assert!(
        !screen.contains("alice: half a thought") && !screen.contains("only for random"),
        "{screen}"
    );
    tmux.press("alice", "Enter");
    // Sent and acknowledged (a /quit while sending asks to be repeated).
    tmux.wait_for("alice", "the draft sent", |s| {
        s.contains("alice: half a thought for general") && !s.contains("sending\u{2026}")
    });
    tmux.type_line("alice", "/quit");
    assert_eq!(tmux.wait_for_exit("alice"), (true, Some(0)));

    // What the relay delivered, as the CLI reads it: each line in its channel.
    let general = conclave(&server, alice.path(), &["history", "general"], None);
    let random = conclave(&server, alice.path(), &["history", "random"], None);
    assert!(general.contains("half a thought for general"), "{general}");
    assert!(!general.contains("only for random"), "{general}");
    assert!(random.contains("only for random"), "{random}");
    assert!(!random.contains("half a thought"), "{random}");
}

#[test]
fn another_device_is_revoked_from_the_terminal_ui_with_the_password_and_a_code() {
    let tmux = Tmux::start();
    let server = ServerProcess::start();
    let laptop = TempDir::new("tui-revoke-laptop");
    let phone = TempDir::new("tui-revoke-phone");
    conclave(
        &server,
        laptop.path(),
        &["--password-stdin", "--unprotected-key", "register", "alice"],
        Some(&format!("{PASSWORD}\n{PASSWORD}\n")),
    );
    // The account has TOTP, so a new device needs a second factor, and the
    // step-up needs a code as well as the password.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let enrolled = conclave(
        &server,
        laptop.path(),
        &["--password-stdin", "2fa", "totp-enroll"],
        Some(&format!("{PASSWORD}\n")),
    );
    let uri = enrolled
        .split_whitespace()
        .find(|word| word.starts_with("otpauth://"))
        .unwrap_or_else(|| panic!("no otpauth URI in {enrolled:?}"));
    let mut totp = TotpApp::from_uri(uri);
    let code = runtime.block_on(totp.fresh_code());
    let confirmed = conclave(
        &server,
        laptop.path(),
        &["2fa", "totp-confirm", &code],
        None,
    );
    // A recovery code signs the phone in, so the app's next code is still
    // unused when the laptop needs it (the relay takes each code once).
    let recovery_code = confirmed
        .lines()
        .skip_while(|line| !line.starts_with("Recovery codes"))
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no recovery codes in {confirmed:?}"))
        .to_owned();

    tmux.open("laptop", &tui_command(laptop.path()));
    tmux.wait_for("laptop", "the UI", |s| {
        s.contains("No channels yet") && !s.contains("syncing")
    });

    // A second device signs in while the UI runs: the banner names the
    // command that works from here (the CLI cannot use this home now).
    let logged_in = conclave(
        &server,
        phone.path(),
        &[
            "--password-stdin",
            "--unprotected-key",
            "--recovery-code",
            &recovery_code,
            "login",
            "alice",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let phone_id = logged_in
        .split("this device is ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no device id in {logged_in:?}"))
        .to_owned();
    tmux.wait_for_text("laptop", &format!("revoke it: /revoke {phone_id}"));
    tmux.type_line("laptop", "/dismiss");

    // Both devices, this one marked.
    tmux.type_line("laptop", "/devices");
    let screen = tmux.wait_for_text("laptop", "devices of alice \u{b7} 2 listed");
    let device_line = |screen: &str, id: &str| -> String {
        screen
            .lines()
            .find(|line| line.contains(id) && line.contains("last seen"))
            .unwrap_or_else(|| panic!("no line for {id}:\n{screen}"))
            .to_owned()
    };
    assert!(
        device_line(&screen, &phone_id).contains(&format!("{phone_id}  active")),
        "{screen}"
    );
    assert!(screen.contains("(this device)  active"), "{screen}");

    // A wrong password: one line of refusal, and the phone stays.
    let wrong = "not the password at all";
    tmux.type_line("laptop", &format!("/revoke {}", &phone_id[..8]));
    tmux.wait_for_text(
        "laptop",
        &format!("your password (hidden), to revoke {phone_id}"),
    );
    tmux.type_line("laptop", wrong);
    tmux.wait_for_text("laptop", "from your authenticator app, or a recovery code");
    tmux.type_line("laptop", "000000");
    let screen = tmux.wait_for_text(
        "laptop",
        &format!("error: {phone_id} was not revoked: wrong password (bad_credentials)"),
    );
    assert!(
        !screen.contains(wrong),
        "the password is never drawn:\n{screen}"
    );
    assert_eq!(tmux.pane_state("laptop"), (false, None));
    let phone_key = runtime.block_on(RawDevice::from_home(&server, phone.path()));
    let still = runtime.block_on(phone_key.signed("GET", "/v1/devices", &Value::Null));
    assert_eq!(
        still.status, 200,
        "the phone still signs in: {:?}",
        still.json
    );

    // The password and a fresh code: the phone is revoked.
    tmux.type_line("laptop", &format!("/revoke {phone_id}"));
    tmux.wait_for_text(
        "laptop",
        &format!("your password (hidden), to revoke {phone_id}"),
    );
    tmux.type_line("laptop", PASSWORD);
    tmux.wait_for_text("laptop", "from your authenticator app, or a recovery code");
    let code = runtime.block_on(totp.fresh_code());
    tmux.type_line("laptop", &code);
    let screen = tmux.wait_for_text(
        "laptop",
        &format!("revoked {phone_id}: its session is closed"),
    );
    assert!(
        !screen.contains(PASSWORD),
        "the password is never drawn:\n{screen}"
    );
    tmux.type_line("laptop", "/devices");
    tmux.wait_for("laptop", "the phone listed as revoked", |s| {
        s.lines()
            .any(|line| line.contains(&phone_id) && line.contains("  revoked  "))
    });

    // The relay refuses the phone from now on.
    let refused = runtime.block_on(phone_key.signed("GET", "/v1/devices", &Value::Null));
    assert_eq!(
        (refused.status, refused.json["error"].as_str()),
        (401, Some("device_revoked")),
        "{:?}",
        refused.json
    );
    let output = conclave_output(&server, phone.path(), &["device", "list"], None);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("this device was revoked"),
        "{output:?}"
    );
    tmux.type_line("laptop", "/quit");
    assert_eq!(tmux.wait_for_exit("laptop"), (true, Some(0)));
}

#[test]
fn a_renamed_channel_keeps_its_selection_and_draft_in_the_terminal_ui() {
    let tmux = Tmux::start();
    let server = ServerProcess::start();
    let alice = TempDir::new("tui-rename-alice");
    let bob = TempDir::new("tui-rename-bob");
    let passwords = format!("{PASSWORD}\n{PASSWORD}\n");
    for (home, user) in [(&alice, "alice"), (&bob, "bob")] {
        conclave(
            &server,
            home.path(),
            &["--password-stdin", "--unprotected-key", "register", user],
            Some(&passwords),
        );
    }
    for args in [
        &["channel", "create", "general"][..],
        &["channel", "invite", "general", "bob"],
        &["channel", "create", "launch"],
        &["channel", "invite", "launch", "bob"],
    ] {
        conclave(&server, alice.path(), args, None);
    }
    tmux.open("bob", &tui_command(bob.path()));
    tmux.wait_for("bob", "both channels", |s| {
        s.contains("> general") && s.contains("launch") && !s.contains("syncing")
    });
    tmux.press("bob", "Tab");
    tmux.wait_for_text("bob", "message launch");
    tmux.ok(&["send-keys", "-t", "bob", "-l", "half a thought for launch"]);
    tmux.wait_for_text("bob", "\u{2502}half a thought for launch");

    // Alice renames the channel bob is looking at: his UI says so, stays on
    // it under its new name, and keeps what he was typing there.
    conclave(
        &server,
        alice.path(),
        &["channel", "rename", "launch", "liftoff"],
        None,
    );
    let screen = tmux.wait_for("bob", "the rename", |s| {
        s.contains("alice renamed launch to liftoff") && s.contains("message liftoff")
    });
    assert!(screen.contains("> liftoff"), "{screen}");
    assert!(
        screen.contains("\u{2502}half a thought for launch"),
        "the draft stays:\n{screen}"
    );
    tmux.press("bob", "Enter");
    tmux.wait_for_text("bob", "bob: half a thought for launch");

    // And he renames it himself.
    tmux.type_line("bob", "/rename rocket");
    let screen = tmux.wait_for("bob", "his rename", |s| {
        s.contains("renamed liftoff to rocket") && s.contains("message rocket")
    });
    assert!(screen.contains("> rocket"), "{screen}");
    assert!(!screen.contains("> general"), "{screen}");
    tmux.type_line("bob", "/quit");
    assert_eq!(tmux.wait_for_exit("bob"), (true, Some(0)));

    let synced = conclave(&server, alice.path(), &["sync"], None);
    assert!(
        synced.contains("[liftoff] bob renamed the channel to rocket"),
        "{synced}"
    );
    let history = conclave(&server, alice.path(), &["history", "rocket"], None);
    assert!(
        history.contains("bob: half a thought for launch"),
        "{history}"
    );
}
