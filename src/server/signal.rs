//! Process signals as one enum: SIGHUP reloads, SIGTERM and SIGINT terminate. The same enum can
//! come from a channel instead, so that tests inject signals into a gateway running in-process.

use tokio::signal::unix::{signal, Signal as UnixSignal, SignalKind};
use tokio::sync::mpsc;

/// What a signal asks the gateway to do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Signal {
    Reload,
    Terminate,
}

/// Where the gateway's signals come from.
#[derive(Debug)]
pub struct Signals(Source);

#[derive(Debug)]
enum Source {
    /// The process's handlers.
    Process {
        hup: UnixSignal,
        term: UnixSignal,
        int: UnixSignal,
    },
    /// A channel; its sender gone counts as `Terminate`.
    Injected(mpsc::UnboundedReceiver<Signal>),
}

impl Signals {
    /// Installs the process's handlers for SIGHUP, SIGTERM and SIGINT (once per process).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self(Source::Process {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        }))
    }

    /// Signals sent through the returned sender rather than by the operating system. Dropping
    /// the sender is `Terminate`.
    pub fn injected() -> (mpsc::UnboundedSender<Signal>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self(Source::Injected(rx)))
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Signal {
        match &mut self.0 {
            Source::Process { hup, term, int } => tokio::select! {
                _ = hup.recv() => Signal::Reload,
                _ = term.recv() => Signal::Terminate,
                _ = int.recv() => Signal::Terminate,
            },
            Source::Injected(rx) => rx.recv().await.unwrap_or(Signal::Terminate),
        }
    }
}
