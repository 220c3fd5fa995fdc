//! Process shutdown signals, the same for every binary.

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: what an operator, systemd or an orchestrator sends
/// to ask for a graceful stop. If the handlers cannot be installed it falls back to Ctrl-C only.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
