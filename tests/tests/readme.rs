//! The README's walk-through ("Five minutes with the CLI"), run as written
//! against the real relay binary over real TLS, so the two cannot drift
//! apart again.
//!
//! Every ```` ```text ```` block of that section is a transcript: a line
//! starting with `$ ` is a command, and the lines under it, up to the next
//! command, are what it prints (standard output, then standard error). In
//! what it prints, `…` stands for any text on that line, and a line that is
//! only `…` for any number of lines. The harness changes only what a
//! transcript cannot hold, and the same way every time:
//! - `$ cargo run -p conclave-server` is the relay this test starts (the
//!   same binary, on a free port, with invite-only registration); `cargo run
//!   -p conclave-server -- ARGS` runs that binary with `--data-dir` pointing
//!   at the relay's data;
//! - `conclave` is the workspace's binary, with `CONCLAVE_SERVER` set to the
//!   relay (the README exports it), a local passphrase in
//!   `CONCLAVE_KEY_PASSPHRASE` (no one is at a terminal to type one), and
//!   `register`/`login` given the password with `--password-stdin`;
//! - `$FP` is the relay's fingerprint, `/tmp/` a fresh directory (also the
//!   working directory and `$HOME`), and each invite code the README shows
//!   is the one the relay printed in its place;
//! - a trailing `# comment` is a comment.
//!
//! `CONCLAVE_README_PRINT=1` prints every command with what it really
//! printed, for updating the README.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Command, Stdio};

use conclave_tests::{ServerProcess, TempDir, workspace_binary};

const PASSWORD: &str = "correct horse battery staple";

/// One command of a transcript and what it is shown to print.
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The `$ ` steps of the text blocks in the README's section `heading`.
fn walk_through(readme: &str, heading: &str) -> Vec<Step> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let section = &readme[start + heading.len()..];
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

/// Whether `line` fits `pattern`, where `…` stands for any text.
fn line_fits(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `lines` fit `patterns`, where a pattern that is only `…` stands
/// for any number of lines.
fn lines_fit(patterns: &[String], lines: &[&str]) -> bool {
    match patterns.split_first() {
        None => lines.is_empty(),
        Some((pattern, rest)) if pattern == "…" => {
            (0..=lines.len()).any(|skip| lines_fit(rest, &lines[skip..]))
        }
        Some((pattern, rest)) => lines
            .split_first()
            .is_some_and(|(line, others)| line_fits(pattern, line) && lines_fit(rest, others)),
    }
}

/// The invite codes in what `admin invite` printed (or the README shows).
fn invite_codes(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.len() == 29 && word.split('-').count() == 6)
        .map(str::to_owned)
        .collect()
}

/// The command as this test runs it (see the module docs).
fn as_run(
    command: &str,
    server: &ServerProcess,
    root: &Path,
    codes: &[(String, String)],
) -> (String, bool) {
    let mut command = command.to_owned();
    if let Some(at) = command.find("  #") {
        command.truncate(at);
    }
    // The README's homes first: the relay's own data lives under /tmp too.
    command = command.replace("/tmp/", &format!("{}/", root.display()));
    let data = server.data.path().join("data");
    command = command.replace(
        "cargo run -p conclave-server -- ",
        &format!("conclave-server --data-dir {} ", data.display()),
    );
    command = command.replace("$FP", &server.fingerprint);
    for (shown, real) in codes {
        command = command.replace(shown.as_str(), real);
    }
    let logs_in = command
        .split_whitespace()
        .any(|w| w == "register" || w == "login");
    if logs_in && command.starts_with("conclave ") {
        command = command.replacen("conclave ", "conclave --password-stdin ", 1);
    }
    (command.trim().to_owned(), logs_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let steps = walk_through(&readme, "## Five minutes with the CLI");
    assert!(
        steps.len() >= 20,
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
    let binaries = workspace_binary("conclave").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let printing = std::env::var_os("CONCLAVE_README_PRINT").is_some();
    let mut codes: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    for step in &steps[1..] {
        let (command, logs_in) = as_run(&step.command, &server, root.path(), &codes);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(root.path())
            .env("PATH", &path)
            .env("HOME", root.path())
            .env("CONCLAVE_SERVER", &server.url)
            .env(
                "CONCLAVE_KEY_PASSPHRASE",
                "a local passphrase for the walk-through",
            )
            .env_remove("CONCLAVE_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            if logs_in {
                stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
            }
        }
        let output = child.wait_with_output().unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = printed.lines().map(str::trim_end).collect();
        let mut expected = step.expected.clone();
        if step.command.contains("admin invite") {
            let shown = invite_codes(&expected.iter().map(String::as_str).collect::<Vec<_>>());
            let real = invite_codes(&lines);
            assert_eq!(shown.len(), real.len(), "{command}: {printed}");
            codes.extend(shown.into_iter().zip(real));
            // Each code the README shows stands for the one printed here.
            for line in &mut expected {
                for (shown, real) in &codes {
                    *line = line.replace(shown.as_str(), real);
                }
            }
        }
        if printing {
            eprintln!("$ {}\n{printed}", step.command);
        }
        if !lines_fit(&expected, &lines) {
            failures.push(format!(
                "$ {}\n  (ran: {command})\n  README shows:\n    {}\n  it printed:\n    {}",
                step.command,
                step.expected.join("\n    "),
                lines.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the README's walk-through and the programs differ in {} step(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_transcript_patterns_mean_what_the_docs_say() {
    assert!(line_fits(
        "saved …/nozzle.pdf (2.4 MB)",
        "saved /x/y/nozzle.pdf (2.4 MB)"
    ));
    assert!(!line_fits("saved …/nozzle.pdf", "saved /x/y/other.pdf"));
    assert!(line_fits("exact", "exact"));
    assert!(!line_fits("exact", "exactly"));
    assert!(line_fits("a…b…c", "a-b-c"));
    let patterns = ["first".to_owned(), "…".to_owned(), "last".to_owned()];
    assert!(lines_fit(&patterns, &["first", "x", "y", "last"]));
    assert!(lines_fit(&patterns, &["first", "last"]));
    assert!(!lines_fit(&patterns, &["first", "x"]));
    assert!(!lines_fit(&["only".to_owned()], &["only", "more"]));
    assert!(lines_fit(&[], &[]));
}
