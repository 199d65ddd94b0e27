//! Process signals as one enum: SIGHUP reloads, SIGTERM and SIGINT terminate.

use tokio::signal::unix::{signal, Signal as UnixSignal, SignalKind};

/// What a signal asks the gateway to do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Signal {
    Reload,
    Terminate,
}

/// The process's signal handlers, installed once.
#[derive(Debug)]
pub struct Signals {
    hup: UnixSignal,
    term: UnixSignal,
    int: UnixSignal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Terminate,
        }
    }
}
