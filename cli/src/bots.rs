//! `conclave bot …`: the bots that ship with Conclave, each run on its
//! owner's machine under a bot account's home directory. Every one answers
//! `/help`; each also does one job:
//!
//! - `echo`: `/echo TEXT` answers with TEXT, in the command's thread;
//! - `remind`: `/remind 10m TEXT` mentions the caller after 10 minutes,
//!   in the thread; reminders are kept in the bot's store and survive a restart;
//! - `call`: `/NAME ARGS` POSTs the command to an HTTP API and answers with
//!   what it says (an outgoing call);
//! - `webhook`: an HTTP endpoint that turns signed POSTs (from CI, say)
//!   into channel messages (incoming webhooks).
//!
//! `bot serve --echo --remind --call NAME=URL --webhooks ADDR` runs any of
//! them together in one process, since one home directory (one bot
//! device) is open in one process at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use conclave_client::{Bot, Client, Content, HttpCaller, Request, WebhookSignature};
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub enum BotCommand {
    /// Run several of the bots below in one process, as one bot account.
    Serve(Features),
    /// Answer /help and /echo TEXT, until interrupted.
    Echo,
    /// Answer /help and /remind DURATION TEXT (e.g. `/remind 1h30m stand-up`;
    /// `/remind list` shows yours), until interrupted. Reminders survive restarts.
    Remind,
    /// Answer commands by calling HTTP APIs: for `/NAME ARGS` POST
    /// {"command","args","user","channel","id"} to URL, then reply with the
    /// answer's "text" (or its body).
    Call {
        /// A command and the URL that answers it; repeat for more.
        #[arg(long = "command", value_name = "NAME=URL", required = true)]
        commands: Vec<String>,
    },
    /// Incoming webhooks: signed POSTs from outside services become
    /// encrypted messages in a channel.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

/// What `bot serve` runs (it always answers /help).
#[derive(clap::Args, Default)]
pub struct Features {
    /// /echo TEXT.
    #[arg(long)]
    echo: bool,
    /// /remind DURATION TEXT.
    #[arg(long)]
    remind: bool,
    /// An outgoing call for /NAME; repeat for more.
    #[arg(long = "call", value_name = "NAME=URL")]
    calls: Vec<String>,
    /// Serve incoming webhooks at ADDR/hooks/NAME.
    #[arg(long, value_name = "ADDR")]
    webhooks: Option<SocketAddr>,
    #[command(flatten)]
    tls: WebhookTls,
}

/// HTTPS for the webhook endpoint (TLS 1.3, as the relay speaks).
#[derive(clap::Args, Default, Clone)]
pub struct WebhookTls {
    /// Serve webhooks over HTTPS with this PEM certificate chain.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Make a webhook that posts in CHANNEL (the bot must be a member);
    /// prints its secret, once.
    Add {
        /// Its name; the endpoint is /hooks/NAME.
        name: String,
        /// The channel it posts in.
        channel: String,
        /// The message, with {{path}} for fields of the JSON payload.
        #[arg(long, default_value = "{{text}}")]
        template: String,
    },
    /// List this bot's webhooks.
    List,
    /// Remove a webhook; its secret stops working at once.
    Remove {
        /// The webhook's name.
        name: String,
    },
    /// Serve the webhooks at ADDR/hooks/NAME (and answer /help), until
    /// interrupted: HTTPS with --tls-cert and --tls-key, else plain HTTP
    /// (for a TLS proxy in front, or this machine alone).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        #[command(flatten)]
        tls: WebhookTls,
    },
}

pub async fn run(client: &Client, command: BotCommand) -> Result<(), BoxError> {
    let name = client
        .username()
        .ok_or("not logged in: log the bot in with `conclave login BOT` first")?;
    if client.account().await?.bot_owner.is_none() {
        return Err(format!(
            "{name} is not a bot account: an admin creates one with `conclave-server admin bot NAME --owner USER`"
        )
        .into());
    }
    let features = match command {
        BotCommand::Serve(features) => features,
        BotCommand::Echo => Features {
            echo: true,
            ..Features::default()
        },
        BotCommand::Remind => Features {
            remind: true,
            ..Features::default()
        },
        BotCommand::Call { commands } => Features {
            calls: commands,
            ..Features::default()
        },
        BotCommand::Webhook(WebhookCommand::Serve { listen, tls }) => Features {
            webhooks: Some(listen),
            tls,
            ..Features::default()
        },
        BotCommand::Webhook(WebhookCommand::Add {
            name: hook,
            channel,
            template,
        }) => {
            client.sync().await?;
            let secret = client.add_webhook(&hook, &channel, &template).await?;
            println!("webhook {hook} posts in {channel}");
            println!("its secret (shown once; give it to the sending service):");
            println!("{}", secret.expose());
            return Ok(());
        }
        BotCommand::Webhook(WebhookCommand::List) => {
            let hooks = client.webhooks().await?;
            if hooks.is_empty() {
                println!("no webhooks yet: `conclave bot webhook add NAME CHANNEL`");
            }
            for hook in hooks {
                println!("{}  -> {}  {}", hook.name, hook.channel, hook.template);
            }
            return Ok(());
        }
        BotCommand::Webhook(WebhookCommand::Remove { name: hook }) => {
            client.remove_webhook(&hook).await?;
            println!("removed webhook {hook}");
            return Ok(());
        }
    };
    serve(client, &name, features).await
}

/// Runs the bot with `features` (and `/help`) until Ctrl-C or SIGTERM.
async fn serve(client: &Client, name: &str, features: Features) -> Result<(), BoxError> {
    // No sync first: the bot's first round syncs before it handles anything.
    let mut bot = with_help(Bot::new(client.clone()));
    let mut answering = vec!["/help".to_owned()];
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    if features.echo {
        answering.push("/echo".into());
        bot = bot.command("echo", |request| async move {
            if request.args().trim().is_empty() {
                request.reply_in_thread("usage: /echo TEXT").await?;
            } else {
                request.reply_in_thread(request.args()).await?;
            }
            Ok(())
        });
    }
    if features.remind {
        answering.push("/remind".into());
        let wake = Arc::new(tokio::sync::Notify::new());
        bot = bot.command("remind", {
            let wake = wake.clone();
            move |request| {
                let wake = wake.clone();
                async move { remind(request, &wake).await }
            }
        });
        tasks.push(tokio::spawn(fire_reminders(client.clone(), wake)));
    }
    if !features.calls.is_empty() {
        let caller = HttpCaller::new()?;
        for spec in &features.calls {
            let (command, url) = spec
                .split_once('=')
                .filter(|(n, u)| {
                    conclave_client::is_command_name(n)
                        && (u.starts_with("https://") || u.starts_with("http://"))
                })
                .ok_or_else(|| {
                    format!("{spec:?}: expected NAME=URL, e.g. status=https://ci.example/status")
                })?;
            answering.push(format!("/{command}"));
            let (url, caller) = (url.to_owned(), caller.clone());
            bot = bot.command(command, move |request| {
                let (url, caller) = (url.clone(), caller.clone());
                async move { call(&caller, &url, request).await }
            });
        }
    }
    if let Some(listen) = features.webhooks {
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let app = webhook_routes(client.clone());
        let tls = match (&features.tls.tls_cert, &features.tls.tls_key) {
            (Some(cert), Some(key)) => Some(webhook_tls(cert, key)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        if tls.is_none() && !address.ip().is_loopback() {
            eprintln!(
                "conclave: serving plain HTTP on {address}: payloads cross the network in clear; use --tls-cert/--tls-key or a TLS proxy"
            );
        }
        eprintln!("webhooks at {scheme}://{address}/hooks/NAME");
        let http = match tls {
            Some(config) => tokio::spawn(
                axum_server::from_tcp_rustls(listener, config)?.serve(app.into_make_service()),
            ),
            None => tokio::spawn(axum_server::from_tcp(listener)?.serve(app.into_make_service())),
        };
        tasks.push(tokio::spawn(async move {
            if let Ok(Err(e)) = http.await {
                eprintln!("conclave: webhook server stopped: {e}");
            }
        }));
    }
    eprintln!(
        "{name} is answering {}; Ctrl-C stops it",
        answering.join(", ")
    );
    let outcome = bot.run_until(shutdown_signal()).await;
    for task in tasks {
        task.abort();
    }
    outcome?;
    eprintln!("{name} stopped");
    Ok(())
}

/// An outgoing call: the command to `url`, its answer to the thread.
async fn call(
    caller: &HttpCaller,
    url: &str,
    request: Request,
) -> Result<(), conclave_client::HandlerError> {
    let answer = caller
        .post_json(
            url,
            &json!({
                "command": request.command(),
                "args": request.args(),
                "user": request.sender(),
                "channel": request.channel(),
                "id": request.idempotency_key(),
            }),
        )
        .await?;
    let answer = if answer.trim().is_empty() {
        "(the service gave no answer)".to_owned()
    } else {
        answer
    };
    request.reply_in_thread(&answer).await?;
    Ok(())
}

/// Adds `/help`: the commands the registry routes to this bot.
fn with_help(bot: Bot) -> Bot {
    bot.command("help", |request| async move {
        let me = request.client().username().unwrap_or_default();
        let mine: Vec<String> = request
            .client()
            .commands()
            .await?
            .into_iter()
            .filter(|c| c.bot == me)
            .map(|c| {
                if c.usage.is_empty() {
                    format!("/{}", c.name)
                } else {
                    c.usage
                }
            })
            .collect();
        let text = if mine.is_empty() {
            format!("{me} answers no commands yet.")
        } else {
            format!("{me} answers: {}", mine.join(" · "))
        };
        request.reply_in_thread(&text).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

// ----- /remind ---------------------------------------------------------------

/// Where reminders live in the bot's store: `remind/<due, zero-padded>/<id>`,
/// so they list in the order they fall due.
const REMINDERS: &str = "remind/";

/// The longest a reminder may wait.
const MAX_REMINDER: u64 = 365 * 24 * 3600;

/// Reminders one bot keeps at most.
const MAX_REMINDERS: usize = 10_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Reminder {
    /// The channel's name when the reminder was set (for messages, and for
    /// reminders stored before `group_id` was).
    channel: String,
    /// The channel's group id: what names it for good, so a reminder
    /// follows the channel through a rename.
    #[serde(default)]
    group_id: Option<String>,
    thread: String,
    user: String,
    text: String,
}

/// Parses `1h30m`, `45s`, `2d`, `10m` into seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: u64 = std::mem::take(&mut number).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (number.is_empty() && total > 0).then_some(total)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn remind(
    request: Request,
    wake: &tokio::sync::Notify,
) -> Result<(), conclave_client::HandlerError> {
    const USAGE: &str =
        "usage: /remind DURATION TEXT (e.g. /remind 1h30m stand-up), or /remind list";
    let args = request.args().trim();
    let client = request.client();
    if args == "list" {
        let mine: Vec<String> = client
            .bot_states(REMINDERS)
            .await?
            .into_iter()
            .filter_map(|(key, value)| {
                let reminder: Reminder = serde_json::from_str(&value).ok()?;
                let due: u64 = key
                    .strip_prefix(REMINDERS)?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()?;
                (reminder.user == request.sender()).then(|| {
                    format!(
                        "in {}: {}",
                        human(due.saturating_sub(unix_now())),
                        reminder.text
                    )
                })
            })
            .collect();
        let text = if mine.is_empty() {
            "You have no reminders.".to_owned()
        } else {
            format!("Your reminders: {}", mine.join(" · "))
        };
        request.reply_privately(&text).await?;
        return Ok(());
    }
    let Some((when, text)) = args.split_once(char::is_whitespace) else {
        request.reply_in_thread(USAGE).await?;
        return Ok(());
    };
    let Some(delay) = parse_duration(when).filter(|d| *d <= MAX_REMINDER) else {
        request
            .reply_in_thread(&format!(
                "{when:?} is not a duration of up to a year. {USAGE}"
            ))
            .await?;
        return Ok(());
    };
    // Keyed by the request, so a handler run again after a crash keeps one reminder.
    let key_suffix = request.idempotency_key();
    let already = client
        .bot_states(REMINDERS)
        .await?
        .into_iter()
        .any(|(key, _)| key.ends_with(key_suffix));
    if !already {
        if client.bot_states(REMINDERS).await?.len() >= MAX_REMINDERS {
            return Err("this bot holds too many reminders; try later".into());
        }
        let due = unix_now() + delay;
        let reminder = Reminder {
            channel: request.channel().to_owned(),
            group_id: Some(request.group_id().to_owned()),
            thread: request.message_id().to_owned(),
            user: request.sender().to_owned(),
            text: text.trim().to_owned(),
        };
        client
            .set_bot_state(
                &format!("{REMINDERS}{due:012}/{key_suffix}"),
                Some(&serde_json::to_string(&reminder)?),
            )
            .await?;
        wake.notify_one();
    }
    request
        .reply_in_thread(&format!("I'll remind you in {}.", human(delay)))
        .await?;
    Ok(())
}

fn human(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join("")
    }
}

/// Posts each reminder when it falls due, and forgets it once posted. A
/// reminder due while the bot was down is posted when it comes back.
async fn fire_reminders(client: Client, wake: Arc<tokio::sync::Notify>) {
    let mut failures = 0u32;
    loop {
        let pause = match fire_due(&client).await {
            Ok(next_due) => {
                failures = 0;
                next_due.map_or(Duration::from_secs(3600), |due| {
                    Duration::from_secs(due.saturating_sub(unix_now()))
                })
            }
            Err(e) => {
                failures += 1;
                eprintln!("conclave: reminders: {e}; retrying");
                Duration::from_secs(u64::from(failures.min(6)) * 5)
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(pause.min(Duration::from_secs(3600))) => {}
        }
    }
}

/// Posts every reminder due now; returns when the next one falls due.
async fn fire_due(client: &Client) -> Result<Option<u64>, conclave_client::ClientError> {
    for (key, value) in client.bot_states(REMINDERS).await? {
        let due: u64 = key
            .strip_prefix(REMINDERS)
            .and_then(|rest| rest.split('/').next())
            .and_then(|due| due.parse().ok())
            .unwrap_or(0);
        if due > unix_now() {
            return Ok(Some(due));
        }
        let Ok(reminder) = serde_json::from_str::<Reminder>(&value) else {
            client.set_bot_state(&key, None).await?;
            continue;
        };
        let body = format!("@{} reminder: {}", reminder.user, reminder.text);
        let content = Content::Reply {
            parent: reminder.thread.clone(),
            mentions: vec![reminder.user.clone()],
            body,
        };
        // By group id: the channel may have been renamed since.
        let channel = match &reminder.group_id {
            Some(group_id) => client.channel(group_id).await,
            None => client.channel_named(&reminder.channel).await,
        };
        let sent = match channel {
            Ok(channel) => channel.send_once(content, &key).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(_) => {}
            Err(e @ conclave_client::ClientError::Transport(_)) => return Err(e),
            // Removed from the channel, or it was archived: nobody to tell.
            Err(e) => eprintln!("conclave: reminder in {} dropped: {e}", reminder.channel),
        }
        client.set_bot_state(&key, None).await?;
    }
    Ok(None)
}

// ----- webhooks ----------------------------------------------------------------

/// TLS 1.3 with the given certificate chain and key, for the webhook endpoint.
fn webhook_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_rustls::RustlsConfig, BoxError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read private key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

fn webhook_routes(client: Client) -> axum::Router {
    use axum::extract::{DefaultBodyLimit, Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    async fn deliver(
        State(client): State<Client>,
        Path(name): Path<String>,
        headers: HeaderMap,
        body: axum::body::Body,
    ) -> axum::response::Response {
        // Read up to one byte past the limit, so "too large" is our JSON
        // answer (413) like every other refusal.
        let body = axum::body::to_bytes(body, conclave_client::MAX_WEBHOOK_BODY + 1)
            .await
            .unwrap_or_else(|_| vec![0; conclave_client::MAX_WEBHOOK_BODY + 1].into());
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signature = WebhookSignature {
            timestamp: header("x-conclave-timestamp"),
            nonce: header("x-conclave-nonce"),
            signature: header("x-conclave-signature"),
        };
        match client.deliver_webhook(&name, &signature, &body).await {
            Ok(seq) => (
                StatusCode::OK,
                axum::Json(json!({ "delivered": true, "seq": seq })),
            )
                .into_response(),
            Err(e) => {
                let status =
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // The reason, never the payload.
                eprintln!(
                    "conclave: webhook {name}: refused ({}): {e}",
                    status.as_u16()
                );
                (
                    status,
                    axum::Json(json!({ "error": e.code(), "message": e.to_string() })),
                )
                    .into_response()
            }
        }
    }

    axum::Router::new()
        .route("/hooks/{name}", post(deliver))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::disable())
        .with_state(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_units() {
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("45s"), Some(45));
        for bad in ["", "10", "m", "10x", "0m", "-5m", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(human(5400), "1h30m");
        assert_eq!(human(0), "0s");
    }
}
