//! A slash command: shown to every member as typed; the bot it names files
//! it in its inbox, where its handler reads the parts.

use sqlx::SqliteConnection;

use super::Received;
use crate::error::Result;
use crate::event::Event;
use crate::store::inbox;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    name: &str,
    args: &str,
    bot: &str,
) -> Result<Vec<Event>> {
    let line = if args.is_empty() {
        format!("/{name}")
    } else {
        format!("/{name} {args}")
    };
    let added = message.insert(tx, "command", None, &line, &[]).await?;
    if bot == message.reader.user && message.by_someone_else() {
        let addressed = inbox::Addressed {
            group_id: message.group_id,
            message_id: message.message_id,
            sender: message.author.user,
            command: Some(name),
            body: args,
            parent: None,
        };
        inbox::push(tx, &addressed).await?;
    }
    Ok(vec![Event::Message(message.entry(tx, added).await?)])
}
