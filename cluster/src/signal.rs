//! Process shutdown signals, the same for every binary, and asking a child process to stop.

/// The signals that ask for a graceful stop: Ctrl-C (SIGINT) and SIGTERM, what an operator,
/// systemd or an orchestrator sends.
///
/// Install it before the process starts serving: until a handler is installed, SIGTERM kills
/// the process outright, so a stop sent right after a health check succeeds would skip the
/// graceful shutdown (and exit by signal instead of with status 0).
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Installs the handlers now (inside a tokio runtime). If they cannot be installed,
    /// [`ShutdownSignal::recv`] falls back to Ctrl-C only.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handlers = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            ShutdownSignal { handlers }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    /// Resolves when one of the signals arrives (also one that arrived since `install`).
    pub async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Asks process `pid` to stop gracefully (SIGTERM), without shelling out to `kill`.
#[cfg(unix)]
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(std::io::Error::from)
}
