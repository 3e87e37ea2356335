//! The `logout` op: the plugin's logout run, streamed to the client, and
//! the logins built on the profile ended after it.

use std::io;
use std::sync::Arc;

use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::config::Profiles;
use crate::wire::Response;
use authplug_broker::{Broker, LogoutOutcome};

use super::lines::send;
use super::token::PROGRESS_QUEUE;

/// Logs a profile out, streaming the plugin's stderr (what it revoked) to
/// the client; returns the final answer. The logout runs in a task of its
/// own, so a client that hangs up cannot stop it half-way.
pub(super) async fn logout(broker: Broker, writer: &mut OwnedWriteHalf) -> io::Result<Response> {
    let (lines_sender, mut lines) = mpsc::channel::<String>(PROGRESS_QUEUE);
    let sink: authplug_protocol::host::StderrSink = Arc::new(move |line: &str| {
        let _ = lines_sender.try_send(line.to_owned());
    });
    let mut done = tokio::spawn(async move { broker.logout(Some(sink)).await });
    let outcome = loop {
        tokio::select! {
            outcome = &mut done => break outcome,
            Some(line) = lines.recv() => send(writer, &Response::progress(&line)).await?,
        }
    };
    while let Ok(line) = lines.try_recv() {
        send(writer, &Response::progress(&line)).await?;
    }
    let mut response = Response::ok();
    match outcome {
        Ok(LogoutOutcome::NothingHeld) => response.logged_out = Some(false),
        Ok(LogoutOutcome::CleanedUp) => response.logged_out = Some(true),
        Ok(LogoutOutcome::CleanupFailed(error)) => {
            response.logged_out = Some(true);
            response.cleanup_error = Some(error.summary());
        }
        // Non-exhaustive; and a panicked task still took the login.
        Ok(_) | Err(_) => response.logged_out = Some(true),
    }
    Ok(response)
}

/// Logs `name` out, then the logins built on it (whose `subject_profile`
/// chain reaches it), after it: none can trade its token meanwhile. The
/// answer is `name`'s.
pub(super) async fn logout_with_what_builds_on_it(
    profiles: &Profiles,
    name: &str,
    broker: &Broker,
    writer: &mut OwnedWriteHalf,
) -> io::Result<Response> {
    let response = logout(broker.clone(), writer).await?;
    for above in profiles.built_on(name) {
        let Ok((_, broker)) = profiles.get(Some(&above)) else {
            continue;
        };
        let ended = logout(broker.clone(), writer).await?;
        if ended.logged_out == Some(true) {
            let mut note = format!("logged out `{above}` too: its login was built on `{name}`'s");
            if let Some(error) = &ended.cleanup_error {
                note.push_str(&format!(" (its plugin could not clean up: {error})"));
            }
            send(writer, &Response::progress(&note)).await?;
        }
    }
    Ok(response)
}
