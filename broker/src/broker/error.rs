//! Why a broker has no token to give ([`BrokerError`]).

use std::sync::Arc;
use std::time::Duration;

use authplug_protocol::host::RunError;

/// Why [`Broker::token`] has no token to give. Cheap to clone: every caller
/// waiting on one run gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The plugin run failed; the stored state is unchanged, unless the
    /// plugin asked for its new one to be kept
    /// ([`RunError::FailedWithNewState`], whose state the broker took).
    #[error("{0}")]
    Run(Arc<RunError>),
    /// A run after a rejection handed out the rejected token again (its new
    /// state is kept).
    #[error("the plugin returned the very token the server just rejected, so retrying cannot help: its login is probably revoked or its server-side session broken (check the plugin's configuration, or log out and in again)")]
    SameTokenAfterReject,
    /// A run for an interactive caller, started non-interactively because
    /// an interactive one failed less than the cool-down ago, failed too.
    #[error("{error}\nAn interactive login was not tried: after a failed one they are refused for the rest of the cool-down ({}s); to start one anyway, ask with `TokenRequest::force`", remaining.as_secs().max(1))]
    CoolingDown {
        /// Left of the cool-down when the run ended.
        remaining: Duration,
        /// How the non-interactive run failed.
        error: Box<BrokerError>,
    },
    /// The login was forgotten ([`Broker::logout`](crate::Broker::logout))
    /// while this run was under way; what it obtained was discarded.
    #[error("the login was forgotten (logged out) while the plugin ran, so what it obtained was discarded; ask again to log in")]
    LoggedOut,
    /// The run's task ended without a result (a panic in an embedding
    /// daemon's stderr callback, or the runtime shutting down).
    #[error("the plugin run was stopped before it finished; try again")]
    Aborted,
}

impl BrokerError {
    /// The message without the plugin's stderr tail, for a caller that
    /// showed the plugin's stderr as it came ([`TokenRequest::on_stderr`]).
    pub fn summary(&self) -> String {
        match self {
            BrokerError::Run(error) => error.summary(),
            BrokerError::CoolingDown { error, .. } => {
                let full = self.to_string();
                let inner = error.to_string();
                match full.strip_prefix(&inner) {
                    Some(rest) => format!("{}{rest}", error.summary()),
                    None => full,
                }
            }
            other => other.to_string(),
        }
    }
}
