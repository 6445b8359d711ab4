//! `conclave tui`: the terminal UI.
//!
//! ```text
//!  conclave  bob │ launch — launch prep, T-3 days
//! ┌ Channels ──────┐┌ launch ────────────────────────────────────────────┐
//! │> launch        ││── Today ──                                         │
//! │  random (2)    ││#6 14:05 alice: fuel check at 11 (edited)  [1 reply…│
//! │Direct messages ││                🚀 1 (bob)                          │
//! │  @alice        ││  ↳ #6 · #7 14:06 bob: looks good                   │
//! └────────────────┘└────────────────────────────────────────────────────┘
//! ┌ message launch ────────────────────────────────────────────────────────┐
//! │/react 6 🚀                                                             │
//! └────────────────────────────────────────────────────────────────────────┘
//! Enter send · /help commands · Tab next channel · PgUp/PgDn scroll · Ctrl-C quit
//! ```
//!
//! One loop owns the screen and waits, in a single `tokio::select!`, on the
//! keyboard, on client-core's events (the push stream runs in
//! [`Client::listen`]'s task), and on the worker tasks ([`worker`]) that do
//! everything slow: one for actions, one for views, and one per file being
//! uploaded or downloaded. The state ([`app`]) changes only in
//! that loop, by pure handlers; drawing ([`render`]) is a pure function of it.
//!
//! While the UI runs it holds the home directory, so no other `conclave`
//! command can use it: what a user must be able to do then, it offers
//! itself. Revoking another device (`/revoke`) asks for the relay's step-up
//! proof in a masked prompt ([`step_up`]) that never draws what is typed.
//!
//! The terminal is restored however the UI ends: on return, on error (a
//! guard's `Drop`), on panic (a hook that runs before the panic message is
//! printed) and on SIGTERM or SIGHUP. Message text is only ever drawn on the
//! alternate screen, which leaves no copy in the terminal's scrollback.

mod app;
mod command;
mod composer;
mod render;
mod step_up;
mod worker;

use std::io::{IsTerminal, Stdout};

use conclave_client::Client;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, EventStream};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use app::{App, Effect};
use render::{Clock, LineCache};

/// Runs the UI until the user quits. The client must be logged in.
pub(crate) async fn run(client: Client) -> Result<(), String> {
    let me = client
        .username()
        .ok_or("not logged in: run `conclave register` or `conclave login` first")?;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err("`conclave tui` needs a terminal".into());
    }
    let mut stop = StopSignals::new().map_err(|e| format!("cannot watch for signals: {e}"))?;

    // Subscribed before anything runs, so no event falls between.
    let mut events = client.events();
    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    let (actions_tx, actions_rx) = mpsc::unbounded_channel();
    let (views_tx, views_rx) = mpsc::unbounded_channel();
    let mut actions = tokio::spawn(worker::actions(
        client.clone(),
        actions_rx,
        updates_tx.clone(),
    ));
    let mut views = tokio::spawn(worker::views(client.clone(), views_rx, updates_tx.clone()));
    let start = tokio::spawn(worker::start(client.clone(), updates_tx.clone()));
    let mut transfers = JoinSet::new();
    let mut listener = None;

    let mut screen = Screen::enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let mut keys = EventStream::new();
    let mut app = App::new(me);
    let mut cache = LineCache::default();
    let _ = views_tx.send(app.request());

    let outcome = loop {
        let clock = Clock::local();
        if let Err(e) = screen
            .terminal
            .draw(|frame| render::draw(frame, &mut app, &clock, &mut cache))
        {
            break Err(format!("drawing failed: {e}"));
        }
        let effects = tokio::select! {
            key = keys.next() => match key {
                Some(Ok(event)) => app.on_terminal(event),
                Some(Err(e)) => break Err(format!("reading the keyboard failed: {e}")),
                None => break Ok(()),
            },
            event = events.recv() => match event {
                Ok(event) => app.on_event(&event),
                // Missed some: the reload shows the current state anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => vec![Effect::Reload],
                Err(broadcast::error::RecvError::Closed) => break Err("the client stopped".into()),
            },
            Some(update) = updates.recv() => app.on_update(update),
            _ = &mut actions => break Err("internal error: the sending task stopped".into()),
            _ = &mut views => break Err("internal error: the loading task stopped".into()),
            Some(finished) = transfers.join_next() => match finished {
                // It reported its outcome before it ended.
                Ok(()) => Vec::new(),
                Err(_) => break Err("internal error: a file transfer stopped".into()),
            },
            () = stop.recv() => break Ok(()),
        };
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::Reload => {
                    let _ = views_tx.send(app.request());
                }
                Effect::Do(action) => {
                    let _ = actions_tx.send(action);
                }
                Effect::Transfer(transfer) => {
                    transfers.spawn(worker::transfer(
                        client.clone(),
                        transfer,
                        updates_tx.clone(),
                    ));
                }
                Effect::Listen => {
                    if listener.is_none() {
                        listener = Some(client.listen());
                    }
                }
                Effect::ClearScreen => {
                    let _ = screen.terminal.clear();
                }
                Effect::Quit => quit = true,
            }
        }
        if quit {
            break Ok(());
        }
    };

    drop(screen);
    if let Some(listener) = listener {
        listener.abort();
    }
    start.abort();
    transfers.abort_all();
    actions.abort();
    views.abort();
    outcome
}

/// SIGTERM and SIGHUP (the terminal closed): leave the UI the normal way.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hangup.recv() => {}
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Self> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        let entered = crossterm::execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(std::io::stdout())));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Back to a normal terminal: cooked mode, the main screen, a visible
/// cursor. Safe to call more than once.
fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// A panic anywhere restores the terminal first, so the message is readable
/// and the shell usable.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}
