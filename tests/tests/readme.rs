//! The README's transcripts, run as written against the real relay binary
//! over real TLS, so the README and the programs cannot drift apart again;
//! and its links, each checked to name a heading that exists.
//!
//! The sections in [`SECTIONS`] are walked in order, on one relay, as one
//! new user would walk them. Every ```` ```text ```` block in them is a
//! transcript: a line starting with `$ ` is a command, and the lines under
//! it, up to the next command, are what it prints (standard output, then
//! standard error; blank lines at the end do not count). In what it prints:
//! - `…` stands for any text on that line, and a line that is only `…`
//!   (indented or not) for any number of lines;
//! - a value that differs on every run (a device id: 32 hex digits; an
//!   invite code or a recovery code: groups of four letters and digits
//!   joined by `-`) stands for the value printed in its place the first
//!   time it appears, and for that same value wherever it appears later,
//!   in commands too;
//! - a command whose output ends in an error (`conclave: …`) must fail, one
//!   that shows a `!!! SECURITY ALERT` must exit with status 3 (as the CLI
//!   does when it showed one), and every other must succeed.
//!
//! The harness changes only what a transcript cannot hold, and the same way
//! every time:
//! - `$ cargo run -p conclave-server` is the relay this test starts (the
//!   same binary, on a free port, with invite-only registration); `cargo run
//!   -p conclave-server -- ARGS` and `conclave-server ARGS` run that binary
//!   with `--data-dir` pointing at the relay's data;
//! - `conclave` is the workspace's binary, with `CONCLAVE_SERVER` set to the
//!   relay (the README exports it) and a local passphrase in
//!   `CONCLAVE_KEY_PASSPHRASE` (no one is at a terminal to type one);
//!   `register`, `login`, and a command the transcript shows asking
//!   `Password:`, are given the password with `--password-stdin` (which
//!   prints no prompt);
//! - `$FP` is the relay's fingerprint, `/tmp/` a fresh directory (also the
//!   working directory and `$HOME`);
//! - a TOTP code (`totp-confirm CODE`, `--totp CODE`) is a fresh one from an
//!   authenticator app holding the `otpauth://` URI `totp-enroll` printed;
//! - `conclave … tui` runs in a terminal of [`SCREEN`]'s size (tmux), moves
//!   with Tab to the channel the screen shows selected, and types what its
//!   composer holds, without Enter; the screen it then draws is its output,
//!   where a time of day (`14:02`) stands for any;
//! - a trailing `# comment` is a comment.
//!
//! `CONCLAVE_README_PRINT=1` prints every command with what it really
//! printed, for updating the README.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use conclave_tests::{ServerProcess, TempDir, TotpApp, workspace_binary};

const PASSWORD: &str = "correct horse battery staple";

/// The sections whose transcripts run, in the order they run.
const SECTIONS: &[&str] = &[
    "## Five minutes with the CLI",
    "## The terminal UI",
    "## Second factors, new devices, recovery",
    "## For auditors: the transparency log",
];

/// The terminal the UI's transcript is drawn in: columns, rows.
const SCREEN: (u16, u16) = (80, 19);

/// One command of a transcript and what it is shown to print.
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The `$ ` steps of the text blocks in the README's section `heading`
/// (up to the next heading of its level).
fn transcripts(readme: &str, heading: &str) -> Vec<Step> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let section = &readme[start + heading.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut steps: Vec<Step> = Vec::new();
    let mut in_text_block = false;
    for line in section.lines() {
        if let Some(info) = line.strip_prefix("```") {
            in_text_block = !in_text_block && info.trim() == "text";
            continue;
        }
        if !in_text_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.trim_end().to_owned());
        }
    }
    steps
}

// ----- transcript patterns -----------------------------------------------------

/// What a value that differs on every run looks like: a device id (32
/// lowercase hex digits), a recovery code (4 groups of 4) or an invite code
/// (6 groups of 4), each group lowercase letters and digits.
fn is_value(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    let hex_id = word.len() == 32 && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let code = matches!(groups.len(), 4 | 6)
        && groups.iter().all(|group| {
            group.len() == 4
                && group
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        });
    hex_id || code
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// One piece of a line's pattern.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// This text, exactly.
    Text(String),
    /// `…`: any text.
    Any,
    /// A value shown as this: stands for whatever value of its shape is
    /// printed in its place.
    Value(String),
}

fn pieces(pattern: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (i, chunk) in pattern.split('…').enumerate() {
        if i > 0 {
            pieces.push(Piece::Any);
        }
        let bytes = chunk.as_bytes();
        let mut text_from = 0;
        let mut at = 0;
        while at < bytes.len() {
            if !is_word_byte(bytes[at]) {
                at += 1;
                continue;
            }
            let end = (at..bytes.len())
                .find(|&j| !is_word_byte(bytes[j]))
                .unwrap_or(bytes.len());
            let word = &chunk[at..end];
            if is_value(word) {
                if text_from < at {
                    pieces.push(Piece::Text(chunk[text_from..at].to_owned()));
                }
                pieces.push(Piece::Value(word.to_owned()));
                text_from = end;
            }
            at = end;
        }
        if text_from < chunk.len() {
            pieces.push(Piece::Text(chunk[text_from..].to_owned()));
        }
    }
    pieces
}

/// What the values a transcript showed stand for: (shown, printed).
type Learned = Vec<(String, String)>;

/// `learned` with `shown` standing for `real`, if that contradicts nothing.
fn learn(learned: &Learned, shown: &str, real: &str) -> Option<Learned> {
    match learned
        .iter()
        .find(|(s, r)| s == shown || r == real)
        .map(|(s, r)| (s == shown, r == real))
    {
        Some((true, true)) => Some(learned.clone()),
        Some(_) => None,
        None => {
            let mut more = learned.clone();
            more.push((shown.to_owned(), real.to_owned()));
            Some(more)
        }
    }
}

fn pieces_fit(pieces: &[Piece], line: &str, learned: &Learned) -> Option<Learned> {
    match pieces.split_first() {
        None => line.is_empty().then(|| learned.clone()),
        Some((Piece::Text(text), rest)) => {
            pieces_fit(rest, line.strip_prefix(text.as_str())?, learned)
        }
        Some((Piece::Any, rest)) => (0..=line.len())
            .filter(|&at| line.is_char_boundary(at))
            .find_map(|at| pieces_fit(rest, &line[at..], learned)),
        Some((Piece::Value(shown), rest)) => {
            let end = line
                .bytes()
                .position(|b| !is_word_byte(b))
                .unwrap_or(line.len());
            let real = &line[..end];
            if !is_value(real) || real.len() != shown.len() {
                return None;
            }
            pieces_fit(rest, &line[end..], &learn(learned, shown, real)?)
        }
    }
}

/// Whether `line` fits `pattern` (see the module docs); what the values in
/// it stand for, then.
fn line_fits(pattern: &str, line: &str, learned: &Learned) -> Option<Learned> {
    pieces_fit(&pieces(pattern), line, learned)
}

/// Whether `lines` fit `patterns`, where a pattern that is only `…`
/// (indented or not) stands for any number of lines.
fn lines_fit(patterns: &[String], lines: &[&str], learned: &Learned) -> Option<Learned> {
    match patterns.split_first() {
        None => lines.is_empty().then(|| learned.clone()),
        Some((pattern, rest)) if pattern.trim() == "…" => {
            (0..=lines.len()).find_map(|skip| lines_fit(rest, &lines[skip..], learned))
        }
        Some((pattern, rest)) => {
            let (line, others) = lines.split_first()?;
            lines_fit(rest, others, &line_fits(pattern, line, learned)?)
        }
    }
}

/// What the command must exit with (see the module docs).
fn wanted_status(expected: &[String]) -> i32 {
    if expected.iter().any(|l| l.starts_with("!!! SECURITY ALERT")) {
        3
    } else if expected
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with("conclave: "))
    {
        1
    } else {
        0
    }
}

fn without_blank_end(lines: &mut Vec<impl AsRef<str>>) {
    while lines.last().is_some_and(|l| l.as_ref().is_empty()) {
        lines.pop();
    }
}

/// Every `hh:mm` in `line` as `hh:mm` (a time of day stands for any).
fn any_time(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let time = i + 5 <= chars.len()
            && chars[i].is_ascii_digit()
            && chars[i + 1].is_ascii_digit()
            && chars[i + 2] == ':'
            && chars[i + 3].is_ascii_digit()
            && chars[i + 4].is_ascii_digit();
        if time {
            out.push_str("hh:mm");
            i += 5;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

// ----- running it ----------------------------------------------------------------

/// A walk through the README on one relay.
struct Walk {
    server: ServerProcess,
    root: TempDir,
    /// `PATH`, with both binaries first.
    path: String,
    learned: Learned,
    totp: Option<TotpApp>,
    printing: bool,
    failures: Vec<String>,
}

impl Walk {
    /// The command as this test runs it (see the module docs), and whether
    /// it reads the password from standard input.
    async fn as_run(&mut self, step: &Step) -> (String, bool) {
        let mut command = step.command.clone();
        if let Some(at) = command.find("  #") {
            command.truncate(at);
        }
        // The README's homes first: the relay's own data lives under /tmp too.
        command = command.replace("/tmp/", &format!("{}/", self.root.path().display()));
        let data = self.server.data.path().join("data");
        for relay in ["cargo run -p conclave-server -- ", "conclave-server "] {
            if let Some(args) = command.strip_prefix(relay) {
                command = format!("conclave-server --data-dir {} {args}", data.display());
                break;
            }
        }
        command = command.replace("$FP", &self.server.fingerprint);
        for (shown, real) in &self.learned {
            command = command.replace(shown.as_str(), real);
        }
        for flag in ["totp-confirm ", "--totp "] {
            if let Some(at) = command.find(flag).map(|at| at + flag.len())
                && let Some(code) = command.get(at..at + 6)
                && code.bytes().all(|b| b.is_ascii_digit())
            {
                let app = self
                    .totp
                    .as_mut()
                    .unwrap_or_else(|| panic!("{command}: no TOTP enrolled before"));
                let fresh = app.fresh_code().await;
                command.replace_range(at..at + 6, &fresh);
            }
        }
        let asks = step.expected.first().is_some_and(|l| l == "Password:")
            || command
                .split_whitespace()
                .any(|w| w == "register" || w == "login");
        if asks && command.starts_with("conclave ") {
            command = command.replacen("conclave ", "conclave --password-stdin ", 1);
        }
        (command.trim().to_owned(), asks)
    }

    fn shell(&self, command: &str) -> Command {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(command)
            .current_dir(self.root.path())
            .env("PATH", &self.path)
            .env("HOME", self.root.path())
            .env("CONCLAVE_SERVER", &self.server.url)
            .env(
                "CONCLAVE_KEY_PASSPHRASE",
                "a local passphrase for the walk-through",
            )
            .env_remove("CONCLAVE_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("TMUX");
        shell
    }

    async fn run(&mut self, step: &Step) {
        let (command, asks) = self.as_run(step).await;
        let mut expected = step.expected.clone();
        if asks && expected.first().is_some_and(|l| l == "Password:") {
            expected.remove(0);
        }
        without_blank_end(&mut expected);
        let (printed, status) = if command.ends_with(" tui") {
            (self.screen_of(&command, &expected), 0)
        } else {
            let output = self.output(&command, asks);
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (printed, output.status.code().unwrap_or(-1))
        };
        let mut lines: Vec<&str> = printed.lines().map(str::trim_end).collect();
        without_blank_end(&mut lines);
        if let Some(uri) = printed
            .split_whitespace()
            .find(|word| word.starts_with("otpauth://"))
        {
            self.totp = Some(TotpApp::from_uri(uri));
        }
        if self.printing {
            eprintln!("$ {}\n{printed}(exit status {status})", step.command);
        }
        if command.ends_with(" tui") {
            let expected: Vec<String> = expected.iter().map(|l| any_time(l)).collect();
            let screen: Vec<String> = lines.iter().map(|l| any_time(l)).collect();
            let screen: Vec<&str> = screen.iter().map(String::as_str).collect();
            if lines_fit(&expected, &screen, &self.learned).is_none() {
                self.failed(step, &command, &printed, "its screen differs");
            }
            return;
        }
        let fits = lines_fit(&expected, &lines, &self.learned);
        let wanted = wanted_status(&expected);
        let how = match (&fits, status == wanted) {
            (Some(_), true) => None,
            (None, true) => Some("it printed something else".to_owned()),
            (Some(_), false) => Some(format!("it exited with {status}, not {wanted}")),
            (None, false) => Some(format!(
                "it printed something else, and exited with {status}, not {wanted}"
            )),
        };
        if let Some(how) = how {
            self.failed(step, &command, &printed, &how);
        }
        if let Some(learned) = fits {
            self.learned = learned;
        }
    }

    fn output(&self, command: &str, with_password: bool) -> Output {
        let mut child = self
            .shell(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            if with_password {
                // A command that fails before it reads closes the pipe.
                let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
            }
        }
        child.wait_with_output().unwrap()
    }

    fn failed(&mut self, step: &Step, command: &str, printed: &str, how: &str) {
        let learned: Vec<String> = self
            .learned
            .iter()
            .map(|(shown, real)| format!("{shown} = {real}"))
            .collect();
        self.failures.push(format!(
            "$ {}\n  (ran: {command})\n  {how}. README shows:\n    {}\n  it printed:\n    {}\n  \
             values seen so far: {}",
            step.command,
            step.expected.join("\n    "),
            printed.lines().collect::<Vec<_>>().join("\n    "),
            learned.join(", ")
        ));
    }

    /// Runs the UI in a terminal of [`SCREEN`]'s size, selects the channel
    /// `expected` shows selected, types what its composer holds, and
    /// returns the screen once it is still.
    fn screen_of(&self, command: &str, expected: &[String]) -> String {
        let tmux = Tmux::new(self);
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            &SCREEN.0.to_string(),
            "-y",
            &SCREEN.1.to_string(),
            command,
        ]);
        let selected = expected
            .iter()
            .find_map(|line| {
                Some(
                    line.split("\u{2502}> ")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .to_owned(),
                )
            })
            .expect("the screen shows a channel selected (`│> NAME`)");
        let typed = expected
            .iter()
            .skip_while(|line| !line.starts_with("\u{250c} message "))
            .nth(1)
            .map(|line| {
                line.trim_matches(|c| c == '\u{2502}' || c == ' ')
                    .to_owned()
            })
            .unwrap_or_default();
        tmux.wait_for("the channels, synced", |s| {
            s.contains("\u{2502}> ") && !s.contains("syncing")
        });
        for _ in 0..10 {
            if tmux.screen().contains(&format!("\u{2502}> {selected} ")) {
                break;
            }
            tmux.run(&["send-keys", "-t", "ui", "Tab"]);
            std::thread::sleep(Duration::from_millis(300));
        }
        if !typed.is_empty() {
            tmux.run(&["send-keys", "-t", "ui", "-l", &typed]);
            tmux.wait_for("what was typed", |s| s.contains(&typed));
        }
        // Still for a second: everything that was on its way has arrived.
        let mut screen = tmux.screen();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = tmux.screen();
            if now == screen || Instant::now() > deadline {
                break;
            }
            screen = now;
        }
        tmux.run(&["send-keys", "-t", "ui", "C-c"]);
        screen
    }
}

/// A tmux server of this walk's own, killed when dropped.
struct Tmux {
    socket: String,
    config: PathBuf,
    environment: Vec<(String, String)>,
}

impl Tmux {
    fn new(walk: &Walk) -> Self {
        let shell = walk.shell("");
        let environment = shell
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        // A UI that stops early stays on screen, to be read in the failure.
        let config = walk.root.path().join("tmux.conf");
        std::fs::write(&config, "set -g remain-on-exit on\n").unwrap();
        Self {
            socket: format!("conclave-readme-{}", std::process::id()),
            config,
            environment,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let mut tmux = Command::new("tmux");
        tmux.env_remove("TMUX")
            .env_remove("CONCLAVE_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR")
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        let output = tmux.output().unwrap_or_else(|e| {
            panic!(
                "tmux is required to run the terminal UI's transcript (apt-get install tmux): {e}"
            )
        });
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "ui"])
    }

    fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if test(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the UI did not show {what}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_transcripts_run_as_written() {
    let readme = readme();
    let mut steps = Vec::new();
    for heading in SECTIONS {
        let found = transcripts(&readme, heading);
        assert!(!found.is_empty(), "{heading} lost its transcripts");
        steps.extend(found);
    }
    assert!(
        steps.len() >= 50,
        "the walk-through lost its transcripts: {} steps",
        steps.len()
    );
    assert_eq!(
        steps[0].command, "cargo run -p conclave-server",
        "the walk-through starts the relay"
    );
    let server = ServerProcess::start_with(vec!["--open-registration".into(), "false".into()]);
    let root = TempDir::new("readme");
    std::fs::create_dir_all(root.path().join("Downloads")).unwrap();
    // The file the walk-through shares: 2.4 MB.
    std::fs::write(
        root.path().join("nozzle-v2.pdf"),
        (0..2_400_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    // Both binaries, built, side by side on the PATH.
    workspace_binary("conclave-server");
    let binaries: PathBuf = workspace_binary("conclave").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut walk = Walk {
        server,
        root,
        path,
        learned: Vec::new(),
        totp: None,
        printing: std::env::var_os("CONCLAVE_README_PRINT").is_some(),
        failures: Vec::new(),
    };
    for step in &steps[1..] {
        walk.run(step).await;
    }
    assert!(
        walk.failures.is_empty(),
        "the README's transcripts and the programs differ in {} step(s):\n\n{}",
        walk.failures.len(),
        walk.failures.join("\n\n")
    );
}

// ----- links ---------------------------------------------------------------------

/// The anchor GitHub gives a heading: lowercase, punctuation dropped
/// (letters, digits, `-` and `_` stay), each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), with
/// GitHub's `-1`, `-2` … for repeats.
fn anchors(markdown: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_code {
            continue;
        }
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let repeats = anchors
            .iter()
            .filter(|a| {
                **a == base
                    || a.strip_prefix(&format!("{base}-"))
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        anchors.push(if repeats == 0 {
            base
        } else {
            format!("{base}-{repeats}")
        });
    }
    anchors
}

/// Every `](target)` of a Markdown text, outside code blocks.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn every_link_in_the_readme_names_a_heading_or_a_file_that_exists() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let readme = readme();
    let own = anchors(&readme);
    let mut broken = Vec::new();
    let targets = link_targets(&readme);
    assert!(
        targets.iter().any(|t| t.starts_with('#')),
        "the README links to its own headings"
    );
    for target in &targets {
        if target.starts_with("http://") || target.starts_with("https://") {
            continue;
        }
        let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
        let headings = if file.is_empty() {
            own.clone()
        } else {
            let path = root.join(file);
            if !path.exists() {
                broken.push(format!("{target}: no file {file}"));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) if path.extension().is_some_and(|e| e == "md") => anchors(&text),
                _ => Vec::new(),
            }
        };
        if !anchor.is_empty() && !headings.iter().any(|a| a == anchor) {
            broken.push(format!("{target}: no heading #{anchor}"));
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in README.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_transcript_patterns_mean_what_the_docs_say() {
    let fits = |pattern: &str, line: &str| line_fits(pattern, line, &Vec::new()).is_some();
    assert!(fits(
        "saved …/nozzle.pdf (2.4 MB)",
        "saved /x/y/nozzle.pdf (2.4 MB)"
    ));
    assert!(!fits("saved …/nozzle.pdf", "saved /x/y/other.pdf"));
    assert!(fits("exact", "exact"));
    assert!(!fits("exact", "exactly"));
    assert!(fits("a…b…c", "a-b-c"));
    let patterns = ["first".to_owned(), "  …".to_owned(), "last".to_owned()];
    let lines_fit =
        |patterns: &[String], lines: &[&str]| lines_fit(patterns, lines, &Vec::new()).is_some();
    assert!(lines_fit(&patterns, &["first", "x", "y", "last"]));
    assert!(lines_fit(&patterns, &["first", "last"]));
    assert!(!lines_fit(&patterns, &["first", "x"]));
    assert!(!lines_fit(&["only".to_owned()], &["only", "more"]));
    assert!(lines_fit(&[], &[]));

    // A value stands for the one printed in its place, and for that one
    // only from then on.
    let shown = "0a2b6e1dd0b8dc12315f75843346ca69";
    let real = "5f0c1a2b3c4d5e6f708192a3b4c5d6e7";
    let learned = line_fits(
        &format!("logged in as alice; this device is {shown}"),
        &format!("logged in as alice; this device is {real}"),
        &Vec::new(),
    )
    .expect("a device id stands for any");
    assert_eq!(learned, [(shown.to_owned(), real.to_owned())]);
    assert!(
        line_fits(
            &format!("revoked {shown}: gone"),
            &format!("revoked {real}: gone"),
            &learned
        )
        .is_some()
    );
    assert!(
        line_fits(
            &format!("revoked {shown}: gone"),
            "revoked 00000000000000000000000000000000: gone",
            &learned
        )
        .is_none()
    );
    // Two values shown apart are printed apart.
    assert!(line_fits("  vjqb-ytde-8q60-2qd0", "  abcd-efgh-2345-6789", &learned).is_some());
    assert!(
        line_fits(
            "ek4y-nxzj-nx2k-f6h1-hcym-tgdc  (expires …)",
            "ek4y-nxzj-nx2k-f6h1  (expires x)",
            &learned
        )
        .is_none()
    );

    assert_eq!(wanted_status(&["conclave: refused".to_owned()]), 1);
    assert_eq!(
        wanted_status(&["".to_owned(), "!!! SECURITY ALERT: x".to_owned()]),
        3
    );
    assert_eq!(wanted_status(&["sent to general (#4)".to_owned()]), 0);
    assert_eq!(
        any_time("#5 14:02 alice: at 9:30"),
        "#5 hh:mm alice: at 9:30"
    );
}

#[test]
fn headings_become_the_anchors_github_makes() {
    assert_eq!(
        slug(" The device key: the OS secret store, or a local passphrase"),
        "the-device-key-the-os-secret-store-or-a-local-passphrase"
    );
    assert_eq!(
        slug(" For auditors: the transparency log"),
        "for-auditors-the-transparency-log"
    );
    assert_eq!(
        anchors("# A\n```sh\n# not a heading\n```\n## A\n### b_c `d`\n#nope"),
        ["a", "a-1", "b_c-d"]
    );
    assert_eq!(
        link_targets("see [x](#a) and [y](docs/B.md#c)\n```\n[z](#no)\n```"),
        ["#a", "docs/B.md#c"]
    );
}
