//! What the composer's line means: plain text for the channel, or a slash
//! command. Parsing only: a typo or a missing argument is caught here, before
//! anything can be sent.

use conclave_client::SearchQuery;

/// One submitted composer line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Text for the selected channel (or the open thread). `//x` sends `/x`.
    Text(String),
    /// A slash command.
    Command(SlashCommand),
}

/// A slash command and its arguments. `seq` is a message's number as the
/// message pane shows it (`#6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlashCommand {
    Help,
    Reply {
        seq: u64,
        text: String,
    },
    Thread {
        seq: u64,
    },
    React {
        seq: u64,
        emoji: String,
        add: bool,
    },
    Edit {
        seq: u64,
        text: String,
    },
    Delete {
        seq: u64,
    },
    Search(SearchQuery),
    /// The new topic; empty clears it.
    Topic(String),
    /// Rename the selected channel for every member.
    Rename {
        name: String,
    },
    Dm {
        users: Vec<String>,
        text: String,
    },
    Join {
        channel: String,
    },
    /// The workspace's public channels.
    Browse,
    Leave,
    /// A channel: private, or listed for the workspace with `topic` when
    /// `public`.
    Create {
        name: String,
        public: bool,
        topic: String,
    },
    Invite {
        user: String,
    },
    Members,
    /// The workspace's slash commands, with their bots and usage.
    Commands,
    /// A workspace command answered by a bot (`/deploy web v2`): client-core
    /// checks the registry and that the bot is in the channel.
    Registered {
        line: String,
    },
    /// Share the file at `path` (as typed: `~` is expanded when it is read).
    Upload {
        path: String,
        caption: String,
    },
    /// Save the file of message `seq` to `to` (as typed), or to the current
    /// directory.
    Download {
        seq: u64,
        to: Option<String>,
    },
    /// This account's devices, this one marked.
    Devices,
    /// Revoke another device of this account: its id, or the start of it
    /// (lowercase hex).
    Revoke {
        device: String,
    },
    Dismiss,
    Quit,
}

/// Every command, as `/help` lists it: usage, then what it does.
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    ("/help", "this list (Esc returns)"),
    ("/reply N TEXT", "reply in the thread of message #N"),
    (
        "/thread N",
        "show the thread of #N; Enter then replies in it (Esc returns)",
    ),
    ("/react N EMOJI", "react to #N, e.g. /react 6 👍 or :tada:"),
    ("/unreact N EMOJI", "take your reaction back"),
    ("/edit N TEXT", "change the text of your message #N"),
    (
        "/delete N",
        "delete your message #N (everyone keeps a tombstone)",
    ),
    (
        "/search WORDS",
        "search this device's history; from:USER in:CHANNEL narrow it, word* finds prefixes",
    ),
    (
        "/topic TEXT",
        "set the channel's topic (/topic - clears it)",
    ),
    (
        "/rename NAME",
        "rename this channel for every member (the name travels encrypted)",
    ),
    (
        "/dm USER[,USER] TEXT",
        "direct message one person, or a group DM",
    ),
    (
        "/create NAME",
        "create a private channel (invitation only); /create NAME --public TOPIC lists it and its topic for the workspace",
    ),
    ("/invite USER", "add every device of USER to this channel"),
    ("/members", "who is in this channel"),
    (
        "/commands",
        "the workspace's commands, each answered by a bot",
    ),
    (
        "/browse",
        "list the workspace's public channels (Esc returns)",
    ),
    ("/join CHANNEL", "join a public channel and switch to it"),
    (
        "/upload PATH [CAPTION…]",
        "share a file here, encrypted on this device; \"quote\" a PATH with spaces, ~ is $HOME",
    ),
    (
        "/download N [PATH]",
        "save the file of #N once its SHA-256 checks (default: this directory, under its name)",
    ),
    (
        "/leave",
        "leave this channel (all your devices; an invitation brings you back)",
    ),
    (
        "/devices",
        "this account's devices, this one marked (Esc returns)",
    ),
    (
        "/revoke DEVICE_ID",
        "sign another of your devices out for good (the start of its id will do); asks for your password, and a second factor if you have one",
    ),
    (
        "/dismiss",
        "clear the security alert banner once you have read it",
    ),
    ("/quit", "exit (also Ctrl-C)"),
];

/// The line typed into the composer, parsed. `Ok(None)` for a blank line.
pub(crate) fn parse(line: &str) -> Result<Option<Input>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Some(Input::Text(line.to_owned())));
    };
    if command.starts_with('/') {
        return Ok(Some(Input::Text(command.to_owned())));
    }
    let command = command.trim();
    let (name, rest) = match command.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (command, ""),
    };
    let parsed = match name.to_lowercase().as_str() {
        "help" | "h" | "?" => no_arguments(rest, "/help", SlashCommand::Help)?,
        "reply" | "r" => {
            let (seq, text) = seq_and_text(rest, "/reply N TEXT")?;
            SlashCommand::Reply { seq, text }
        }
        "thread" => SlashCommand::Thread {
            seq: only_seq(rest, "/thread N")?,
        },
        "react" | "unreact" => {
            let add = name.eq_ignore_ascii_case("react");
            let usage = if add {
                "/react N EMOJI"
            } else {
                "/unreact N EMOJI"
            };
            let (seq, emoji) = seq_and_text(rest, usage)?;
            if emoji.split_whitespace().count() != 1 {
                return Err(format!("usage: {usage} (one emoji, no spaces)"));
            }
            SlashCommand::React { seq, emoji, add }
        }
        "edit" => {
            let (seq, text) = seq_and_text(rest, "/edit N TEXT")?;
            SlashCommand::Edit { seq, text }
        }
        "delete" | "del" => SlashCommand::Delete {
            seq: only_seq(rest, "/delete N")?,
        },
        "search" | "s" => SlashCommand::Search(search_query(rest)?),
        "topic" => match rest {
            "" => return Err("usage: /topic TEXT (or /topic - to clear it)".into()),
            "-" => SlashCommand::Topic(String::new()),
            topic => SlashCommand::Topic(topic.to_owned()),
        },
        "rename" => SlashCommand::Rename {
            name: one_word(rest, "/rename NAME")?,
        },
        "dm" | "msg" => {
            let usage = "usage: /dm USER[,USER] TEXT";
            let Some((users, text)) = rest.split_once(char::is_whitespace) else {
                return Err(usage.into());
            };
            let users: Vec<String> = users
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_start_matches('@').to_owned())
                .collect();
            let text = text.trim();
            if users.is_empty() || text.is_empty() {
                return Err(usage.into());
            }
            SlashCommand::Dm {
                users,
                text: text.to_owned(),
            }
        }
        "join" => SlashCommand::Join {
            channel: one_word(rest, "/join CHANNEL")?,
        },
        "leave" | "part" => no_arguments(rest, "/leave", SlashCommand::Leave)?,
        "create" => create(rest)?,
        "invite" => SlashCommand::Invite {
            user: one_word(rest, "/invite USER")?
                .trim_start_matches('@')
                .to_owned(),
        },
        "members" | "who" => no_arguments(rest, "/members", SlashCommand::Members)?,
        "commands" => no_arguments(rest, "/commands", SlashCommand::Commands)?,
        "browse" => no_arguments(rest, "/browse", SlashCommand::Browse)?,
        "upload" => {
            let usage = "/upload PATH [CAPTION…]";
            let (path, caption) = path_and_rest(rest, usage)?;
            SlashCommand::Upload {
                path,
                caption: caption.to_owned(),
            }
        }
        "download" => {
            let usage = "/download N [PATH]";
            let (number, to) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if number.is_empty() {
                return Err(format!("usage: {usage}"));
            }
            let seq = seq(number, usage)?;
            let to = match to.trim() {
                "" => None,
                to => {
                    let (path, extra) = path_and_rest(to, usage)?;
                    if !extra.is_empty() {
                        return Err(format!("usage: {usage} (put a PATH with spaces in quotes)"));
                    }
                    Some(path)
                }
            };
            SlashCommand::Download { seq, to }
        }
        "devices" => no_arguments(rest, "/devices", SlashCommand::Devices)?,
        "revoke" => SlashCommand::Revoke {
            device: device_id(rest)?,
        },
        "dismiss" => no_arguments(rest, "/dismiss", SlashCommand::Dismiss)?,
        "quit" | "exit" | "q" => no_arguments(rest, "/quit", SlashCommand::Quit)?,
        "" => return Err("a command name must follow the / (type /help)".into()),
        // Anything else that could be a workspace command goes to its bot,
        // if the registry has it; client-core answers "unknown" otherwise.
        _ if conclave_client::is_command_name(name) => SlashCommand::Registered {
            line: line.trim().to_owned(),
        },
        _ => {
            return Err(format!(
                "unknown command /{name} (type /help; start with // to send a line beginning with /)"
            ));
        }
    };
    Ok(Some(Input::Command(parsed)))
}

fn no_arguments(rest: &str, usage: &str, command: SlashCommand) -> Result<SlashCommand, String> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(format!("usage: {usage} (it takes no arguments)"))
    }
}

/// `6` or `#6`.
fn seq(word: &str, usage: &str) -> Result<u64, String> {
    word.trim_start_matches('#')
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("usage: {usage} ({word:?} is not a message number)"))
}

fn only_seq(rest: &str, usage: &str) -> Result<u64, String> {
    let mut words = rest.split_whitespace();
    match (words.next(), words.next()) {
        (Some(word), None) => seq(word, usage),
        _ => Err(format!("usage: {usage}")),
    }
}

fn seq_and_text(rest: &str, usage: &str) -> Result<(u64, String), String> {
    let Some((number, text)) = rest.split_once(char::is_whitespace) else {
        return Err(format!("usage: {usage}"));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("usage: {usage}"));
    }
    Ok((seq(number, usage)?, text.to_owned()))
}

fn one_word(rest: &str, usage: &str) -> Result<String, String> {
    let mut words = rest.split_whitespace();
    match (words.next(), words.next()) {
        (Some(word), None) => Ok(word.to_owned()),
        _ => Err(format!("usage: {usage}")),
    }
}

/// A device id as `/devices` shows it (hex), or the start of one.
fn device_id(rest: &str) -> Result<String, String> {
    let usage = "/revoke DEVICE_ID";
    let typed = one_word(rest, usage)?;
    if !typed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "usage: {usage} ({typed:?} is not a device id: /devices lists them)"
        ));
    }
    Ok(typed.to_ascii_lowercase())
}

/// `/create NAME`, or `/create NAME --public [TOPIC…]`.
fn create(rest: &str) -> Result<SlashCommand, String> {
    let usage = "usage: /create NAME, or /create NAME --public [TOPIC…]";
    let (name, options) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if name.is_empty() || name.starts_with("--") {
        return Err(usage.into());
    }
    let options = options.trim();
    let (public, topic) = match options.split_once(char::is_whitespace) {
        _ if options.is_empty() => (false, ""),
        Some(("--public", topic)) => (true, topic.trim()),
        None if options == "--public" => (true, ""),
        _ => return Err(usage.into()),
    };
    Ok(SlashCommand::Create {
        name: name.to_owned(),
        public,
        topic: topic.to_owned(),
    })
}

/// A path, then whatever follows it. The path is the first word, or
/// everything between a pair of quotes (`"…"` or `'…'`) when it holds spaces.
fn path_and_rest<'a>(rest: &'a str, usage: &str) -> Result<(String, &'a str), String> {
    let (path, after) = match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inner = &rest[1..];
            let Some(end) = inner.find(quote) else {
                return Err(format!(
                    "usage: {usage} (the path's closing {quote} is missing)"
                ));
            };
            let after = &inner[end + 1..];
            if !after.is_empty() && !after.starts_with(char::is_whitespace) {
                return Err(format!(
                    "usage: {usage} (a space must follow the quoted path)"
                ));
            }
            (&inner[..end], after)
        }
        _ => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
    };
    if path.is_empty() {
        return Err(format!("usage: {usage}"));
    }
    Ok((path.to_owned(), after.trim()))
}

/// Words to find, with `from:USER` and `in:CHANNEL` taken out as filters.
fn search_query(rest: &str) -> Result<SearchQuery, String> {
    let mut query = SearchQuery::default();
    let mut words = Vec::new();
    for word in rest.split_whitespace() {
        if let Some(user) = word.strip_prefix("from:").filter(|u| !u.is_empty()) {
            query.author = Some(user.trim_start_matches('@').to_owned());
        } else if let Some(channel) = word.strip_prefix("in:").filter(|c| !c.is_empty()) {
            query.channel = Some(channel.to_owned());
        } else {
            words.push(word);
        }
    }
    if words.is_empty() {
        return Err("usage: /search WORDS [from:USER] [in:CHANNEL]".into());
    }
    query.words = words.join(" ");
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> SlashCommand {
        match parse(line) {
            Ok(Some(Input::Command(command))) => command,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn plain_text_and_escaped_slashes_are_messages() {
        assert_eq!(parse("hello"), Ok(Some(Input::Text("hello".into()))));
        assert_eq!(
            parse("//not a command"),
            Ok(Some(Input::Text("/not a command".into())))
        );
        assert_eq!(parse("   "), Ok(None));
        // Leading spaces are the user's text, not a command.
        assert_eq!(parse(" /help"), Ok(Some(Input::Text(" /help".into()))));
    }

    #[test]
    fn commands_take_numbers_with_or_without_hash() {
        assert_eq!(
            command("/reply #3 sounds good"),
            SlashCommand::Reply {
                seq: 3,
                text: "sounds good".into()
            }
        );
        assert_eq!(
            command("/react 6 :tada:"),
            SlashCommand::React {
                seq: 6,
                emoji: ":tada:".into(),
                add: true
            }
        );
        assert_eq!(
            command("/unreact 6 👍"),
            SlashCommand::React {
                seq: 6,
                emoji: "👍".into(),
                add: false
            }
        );
        assert_eq!(command("/thread 4"), SlashCommand::Thread { seq: 4 });
        assert_eq!(command("/delete #9"), SlashCommand::Delete { seq: 9 });
        assert_eq!(
            command("/edit 2 fixed  text "),
            SlashCommand::Edit {
                seq: 2,
                text: "fixed  text".into()
            }
        );
        assert_eq!(command("/QUIT"), SlashCommand::Quit);
        assert_eq!(command("/topic -"), SlashCommand::Topic(String::new()));
        assert_eq!(
            command("/rename liftoff"),
            SlashCommand::Rename {
                name: "liftoff".into()
            }
        );
        assert_eq!(
            parse("/rename two words"),
            Err("usage: /rename NAME".into())
        );
    }

    #[test]
    fn search_filters_and_direct_messages_parse() {
        assert_eq!(
            command("/search fuel rock* from:@alice in:launch"),
            SlashCommand::Search(SearchQuery {
                words: "fuel rock*".into(),
                author: Some("alice".into()),
                channel: Some("launch".into()),
                ..SearchQuery::default()
            })
        );
        assert_eq!(
            command("/dm bob,@carol can you call me?"),
            SlashCommand::Dm {
                users: vec!["bob".into(), "carol".into()],
                text: "can you call me?".into()
            }
        );
    }

    #[test]
    fn channels_are_private_unless_public_and_public_ones_take_a_topic() {
        assert_eq!(
            command("/create ops"),
            SlashCommand::Create {
                name: "ops".into(),
                public: false,
                topic: String::new()
            }
        );
        assert_eq!(
            command("/create lobby --public  all hands, Fridays "),
            SlashCommand::Create {
                name: "lobby".into(),
                public: true,
                topic: "all hands, Fridays".into()
            }
        );
        assert_eq!(
            command("/create lobby --public"),
            SlashCommand::Create {
                name: "lobby".into(),
                public: true,
                topic: String::new()
            }
        );
        assert_eq!(command("/browse"), SlashCommand::Browse);
        assert_eq!(
            command("/join lobby"),
            SlashCommand::Join {
                channel: "lobby".into()
            }
        );
    }

    #[test]
    fn file_paths_are_one_word_or_quoted() {
        assert_eq!(
            command("/upload ~/plan.pdf the plan, v2"),
            SlashCommand::Upload {
                path: "~/plan.pdf".into(),
                caption: "the plan, v2".into()
            }
        );
        assert_eq!(
            command("/upload \"/tmp/launch plan.pdf\""),
            SlashCommand::Upload {
                path: "/tmp/launch plan.pdf".into(),
                caption: String::new()
            }
        );
        assert_eq!(
            command("/upload 'say \"hi\".txt'"),
            SlashCommand::Upload {
                path: "say \"hi\".txt".into(),
                caption: String::new()
            }
        );
        assert_eq!(
            command("/download #7"),
            SlashCommand::Download { seq: 7, to: None }
        );
        assert_eq!(
            command("/download 7 \"~/My Downloads\""),
            SlashCommand::Download {
                seq: 7,
                to: Some("~/My Downloads".into())
            }
        );
    }

    #[test]
    fn other_names_go_to_the_workspace_registry() {
        assert_eq!(
            parse("/deploy web-frontend v2 ").unwrap(),
            Some(Input::Command(SlashCommand::Registered {
                line: "/deploy web-frontend v2".into()
            }))
        );
        assert_eq!(
            parse("/commands").unwrap(),
            Some(Input::Command(SlashCommand::Commands))
        );
    }

    #[test]
    fn devices_are_listed_and_revoked_by_their_hex_id() {
        assert_eq!(command("/devices"), SlashCommand::Devices);
        assert_eq!(
            command("/revoke 3F4C0a"),
            SlashCommand::Revoke {
                device: "3f4c0a".into()
            }
        );
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (line, expected) in [
            ("/Frob!", "unknown command /Frob!"),
            ("/react abc :tada:", "usage: /react N EMOJI"),
            ("/react 3", "usage: /react N EMOJI"),
            ("/react 3 two words", "one emoji"),
            ("/reply 3", "usage: /reply N TEXT"),
            ("/edit 0 text", "not a message number"),
            ("/thread", "usage: /thread N"),
            ("/search from:bob", "usage: /search"),
            ("/dm bob", "usage: /dm"),
            ("/topic", "usage: /topic"),
            ("/quit now", "takes no arguments"),
            ("/upload", "usage: /upload PATH"),
            ("/upload \"no end.pdf", "closing \" is missing"),
            ("/upload 'a'b c", "a space must follow the quoted path"),
            ("/download", "usage: /download N [PATH]"),
            ("/download plan.pdf", "not a message number"),
            ("/download 4 my files", "put a PATH with spaces in quotes"),
            ("/create", "usage: /create NAME"),
            ("/create lobby hello", "usage: /create NAME"),
            ("/browse all", "takes no arguments"),
            ("/devices mine", "takes no arguments"),
            ("/revoke", "usage: /revoke DEVICE_ID"),
            ("/revoke 3f4c 9a0b", "usage: /revoke DEVICE_ID"),
            ("/revoke phone", "\"phone\" is not a device id"),
            ("/", "a command name must follow"),
        ] {
            let error = parse(line).expect_err(line);
            assert!(error.contains(expected), "{line:?} gave {error:?}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
    }

    #[test]
    fn help_lists_every_command_once() {
        let names: Vec<&str> = COMMANDS
            .iter()
            .map(|(usage, _)| usage.split(' ').next().unwrap_or(usage))
            .collect();
        for name in &names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
            // Each listed command parses to something other than "unknown".
            let parsed = parse(name);
            assert!(
                !matches!(&parsed, Err(e) if e.contains("unknown command")),
                "{name}: {parsed:?}"
            );
        }
        for name in ["/upload", "/download", "/browse", "/join"] {
            assert!(names.contains(&name), "{name} is listed");
        }
    }
}
