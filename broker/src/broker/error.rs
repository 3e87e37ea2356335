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

/// What kind of failure a [`BrokerError`] is: what a caller acts on (say
/// "log in in a terminal", offer `force`, fix the configuration), never
/// the words of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// A login is needed, and the run was not allowed to start one (the
    /// plugin said so, PROTOCOL.md rule 6): ask again interactively.
    LoginNeeded,
    /// An interactive run was refused: one failed less than the cool-down
    /// ago (and the quiet run tried instead failed too).
    CoolingDown,
    /// The plugin ran and failed: a non-zero exit, a signal, the timeout.
    PluginFailed,
    /// The plugin broke the protocol: an empty or oversized token or
    /// state, descriptors held after it exited.
    PluginBrokeProtocol,
    /// The plugin could not be started: a configuration to fix.
    PluginNotStarted,
    /// The plugin handed back the very token a server had refused.
    TokenRefusedAgain,
    /// The login was forgotten (logged out) while the run was under way.
    LoggedOut,
    /// The run was stopped before it finished.
    Cancelled,
}

impl BrokerError {
    /// The kind of this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            BrokerError::Run(error) => run_failure_kind(error),
            BrokerError::SameTokenAfterReject => FailureKind::TokenRefusedAgain,
            BrokerError::CoolingDown { .. } => FailureKind::CoolingDown,
            BrokerError::LoggedOut => FailureKind::LoggedOut,
            BrokerError::Aborted => FailureKind::Cancelled,
        }
    }
}

/// The kind of a failed plugin run.
fn run_failure_kind(error: &RunError) -> FailureKind {
    match error {
        RunError::LoginNeeded { .. } => FailureKind::LoginNeeded,
        RunError::Spawn { .. } => FailureKind::PluginNotStarted,
        RunError::StateTooLarge { .. }
        | RunError::TokenTooLarge { .. }
        | RunError::EmptyToken { .. }
        | RunError::LeakedDescriptors { .. } => FailureKind::PluginBrokeProtocol,
        RunError::Cancelled { .. } => FailureKind::Cancelled,
        // A plugin's failure, in the rest of the cases, or one to come.
        _ => FailureKind::PluginFailed,
    }
}
