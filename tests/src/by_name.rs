//! Channels by name, as the people in these tests (and the CLI) name them.
//!
//! client-core addresses a channel by its group id through a
//! [`Channel`](conclave_client::Channel) handle. The tests speak of
//! "general" and "design", so each call here finds the handle by its name
//! first, exactly as `conclave` does, and fails as it would for a name this
//! device does not know.

use std::future::Future;
use std::path::{Path, PathBuf};

use conclave_client::{
    ChannelState, Client, CommandSent, Content, FileInfo, HistoryEntry, Member, Progress, Reacted,
    Result,
};

/// A channel operation on a [`Client`], by the channel's name.
macro_rules! by_name {
    ($(
        $(#[$doc:meta])*
        fn $name:ident$(<$($generic:ident: $bound:path),*>)?(&self, channel $(, $arg:ident: $ty:ty)*) -> $out:ty
            => $method:ident;
    )*) => {
        /// Channel operations by channel name; see the module documentation.
        pub trait ByName {
            $(
                $(#[$doc])*
                fn $name$(<$($generic: $bound + Send),*>)?(&self, channel: &str $(, $arg: $ty)*)
                    -> impl Future<Output = Result<$out>> + Send;
            )*
        }

        impl ByName for Client {
            $(
                fn $name$(<$($generic: $bound + Send),*>)?(&self, channel: &str $(, $arg: $ty)*)
                    -> impl Future<Output = Result<$out>> + Send {
                    async move { self.channel_named(channel).await?.$method($($arg),*).await }
                }
            )*
        }
    };
}

by_name! {
    /// [`Channel::send`](conclave_client::Channel::send).
    fn send(&self, channel, text: &str) -> u64 => send;
    /// [`Channel::send_content`](conclave_client::Channel::send_content).
    fn send_content(&self, channel, content: Content) -> u64 => send_content;
    /// [`Channel::send_raw`](conclave_client::Channel::send_raw).
    fn send_raw(&self, channel, plaintext: &[u8], message_id: &str) -> u64 => send_raw;
    /// [`Channel::send_once`](conclave_client::Channel::send_once).
    fn send_once(&self, channel, content: Content, key: &str) -> Option<u64> => send_once;
    /// [`Channel::reply`](conclave_client::Channel::reply).
    fn reply(&self, channel, parent: &str, text: &str) -> u64 => reply;
    /// [`Channel::react`](conclave_client::Channel::react).
    fn react(&self, channel, message: &str, emoji: &str, add: bool) -> Reacted => react;
    /// [`Channel::edit`](conclave_client::Channel::edit).
    fn edit(&self, channel, message: &str, text: &str) -> u64 => edit;
    /// [`Channel::delete`](conclave_client::Channel::delete).
    fn delete(&self, channel, message: &str) -> u64 => delete;
    /// [`Channel::history`](conclave_client::Channel::history).
    fn history(&self, channel) -> Vec<HistoryEntry> => history;
    /// [`Channel::thread`](conclave_client::Channel::thread).
    fn thread(&self, channel, parent: &str) -> Vec<HistoryEntry> => thread;
    /// [`Channel::members`](conclave_client::Channel::members).
    fn members(&self, channel) -> Vec<Member> => members;
    /// [`Channel::state`](conclave_client::Channel::state).
    fn channel_state(&self, channel) -> ChannelState => state;
    /// [`Channel::invite`](conclave_client::Channel::invite).
    fn invite(&self, channel, username: &str) -> () => invite;
    /// [`Channel::remove`](conclave_client::Channel::remove).
    fn remove(&self, channel, username: &str) -> () => remove;
    /// [`Channel::leave`](conclave_client::Channel::leave).
    fn leave(&self, channel) -> () => leave;
    /// [`Channel::archive`](conclave_client::Channel::archive).
    fn archive(&self, channel) -> () => archive;
    /// [`Channel::set_retention`](conclave_client::Channel::set_retention).
    fn set_retention(&self, channel, days: Option<u32>) -> () => set_retention;
    /// [`Channel::set_topic`](conclave_client::Channel::set_topic).
    fn set_topic(&self, channel, topic: &str) -> u64 => set_topic;
    /// [`Channel::rename`](conclave_client::Channel::rename).
    fn rename_channel(&self, channel, new_name: &str) -> u64 => rename;
    /// [`Channel::mark_read`](conclave_client::Channel::mark_read).
    fn mark_read(&self, channel) -> () => mark_read;
    /// [`Channel::rotate_keys`](conclave_client::Channel::rotate_keys).
    fn rotate_keys(&self, channel) -> () => rotate_keys;
    /// [`Channel::message_id_at`](conclave_client::Channel::message_id_at).
    fn message_id_at(&self, channel, seq: u64) -> String => message_id_at;
    /// [`Channel::set_history_sharing`](conclave_client::Channel::set_history_sharing).
    fn set_history_sharing(&self, channel, allowed: bool) -> () => set_history_sharing;
    /// [`Channel::share_history`](conclave_client::Channel::share_history).
    fn share_history(&self, channel, user: &str) -> u64 => share_history;
    /// [`Channel::run_command`](conclave_client::Channel::run_command).
    fn run_command(&self, channel, line: &str) -> Vec<CommandSent> => run_command;
    /// [`Channel::upload`](conclave_client::Channel::upload).
    fn upload<P: Progress>(&self, channel, path: &Path, caption: &str, progress: P) -> u64 => upload;
    /// [`Channel::download`](conclave_client::Channel::download).
    fn download<P: Progress>(&self, channel, message: &str, destination: &Path, progress: P) -> (PathBuf, FileInfo) => download;
}
