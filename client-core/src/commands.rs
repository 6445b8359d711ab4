//! Slash commands: the workspace keeps a registry (name → bot, usage; no
//! secrets), and a command typed in a channel travels as encrypted
//! `command` content for the bot, which must be a member there. The relay
//! sees neither the command nor its arguments.

use crate::channel::Channel;
use crate::client::Client;
use crate::content::Content;
use crate::error::{ClientError, Result};
use conclave_crypto::is_command_name;
pub use conclave_proto::SlashCommand;
use conclave_proto::{SlashCommands, routes};

impl Client {
    /// The workspace's slash commands, by name.
    pub async fn commands(&self) -> Result<Vec<SlashCommand>> {
        let listed: SlashCommands = self.fetch(routes::COMMANDS).await?;
        Ok(listed.commands)
    }
}

/// A command sent to a bot: which bot, and the message that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSent {
    /// The bot that answers it.
    pub bot: String,
    /// The command's position in the channel.
    pub seq: u64,
}

impl Channel {
    /// Sends `/name args` in the channel to the bot that answers it. Refused
    /// here, with nothing sent, if no such command exists or its bot is not
    /// a member of the channel.
    ///
    /// `/help` (unless the workspace registered a `help` of its own) goes to
    /// every bot in the channel, or with `/help BOT` to that one: each
    /// answers in the thread with what it does.
    pub async fn run_command(&self, line: &str) -> Result<Vec<CommandSent>> {
        let line = line.trim();
        let Some(rest) = line.strip_prefix('/') else {
            return Err(ClientError::Invalid("a command starts with /".into()));
        };
        let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !is_command_name(name) {
            return Err(ClientError::Invalid(format!(
                "/{name} is not a command name"
            )));
        }
        let registry = self.client.commands().await?;
        if name == "help" && !registry.iter().any(|c| c.name == "help") {
            return self.ask_bots_for_help(args.trim()).await;
        }
        let Some(command) = registry.iter().find(|c| c.name == name).cloned() else {
            let close: Vec<&str> = registry
                .iter()
                .filter(|c| c.name.starts_with(name))
                .map(|c| c.usage.as_str())
                .collect();
            return Err(ClientError::Invalid(if close.is_empty() {
                format!(
                    "unknown command /{name}: `conclave commands` lists this workspace's commands"
                )
            } else {
                format!(
                    "unknown command /{name}; did you mean {}?",
                    close.join(" or ")
                )
            }));
        };
        if !self.members().await?.iter().any(|m| m.user == command.bot) {
            return Err(ClientError::Invalid(format!(
                "/{name} is answered by {bot}, which is not in {channel_name}: add it with `conclave channel invite {channel_name} {bot}`",
                bot = command.bot,
                channel_name = self.name(),
            )));
        }
        let seq = self
            .send_content(Content::Command {
                name: name.to_owned(),
                args: args.trim().to_owned(),
                bot: command.bot.clone(),
            })
            .await?;
        Ok(vec![CommandSent {
            bot: command.bot,
            seq,
        }])
    }

    /// `/help [BOT]`: one `help` command to each bot member of the channel (or
    /// to the one named).
    async fn ask_bots_for_help(&self, named: &str) -> Result<Vec<CommandSent>> {
        let bots: Vec<String> = self
            .members()
            .await?
            .into_iter()
            .filter(|m| m.bot_owner.is_some())
            .map(|m| m.user)
            .filter(|user| named.is_empty() || user == named)
            .collect();
        if bots.is_empty() {
            return Err(ClientError::Invalid(if named.is_empty() {
                format!(
                    "no bot is in {} to answer /help: `conclave commands` lists this workspace's commands",
                    self.name()
                )
            } else {
                format!("{named} is not a bot in {}", self.name())
            }));
        }
        let mut sent = Vec::new();
        for bot in bots {
            let seq = self
                .send_content(Content::Command {
                    name: "help".to_owned(),
                    args: String::new(),
                    bot: bot.clone(),
                })
                .await?;
            sent.push(CommandSent { bot, seq });
        }
        Ok(sent)
    }
}
