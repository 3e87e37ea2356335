//! The `token` op: a token from the profile's broker, the plugin's stderr
//! streamed to the client while it waits, a heartbeat, and a client that
//! hangs up noticed.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::config::Profiles;
use crate::consumers::Consumers;
use crate::wire::{ErrorKind, Response, WireToken};
use authplug_broker::{BrokerError, TokenRequest};

use super::lines::send;
use super::HEARTBEAT;

/// One `token` request, as asked.
pub(super) struct Ask<'a> {
    pub(super) profile: Option<&'a str>,
    pub(super) interactive: bool,
    pub(super) force: bool,
    pub(super) consumer: Option<&'a str>,
    pub(super) keep_running: bool,
}

#[derive(PartialEq, Eq)]
pub(super) enum Outcome {
    Answered,
    ClientGone,
}

/// Gets a token, streaming the plugin's stderr lines to the client while it
/// waits. A client that hangs up stops waiting, which cancels the run if it
/// was the last one waiting.
pub(super) async fn token(
    profiles: &Profiles,
    consumers: &Consumers,
    ask: Ask<'_>,
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) -> io::Result<Outcome> {
    let Ask {
        profile,
        interactive,
        force,
        consumer,
        keep_running,
    } = ask;
    let (name, broker) = match profiles.get(profile) {
        Ok(found) => found,
        Err(message) => {
            send(
                writer,
                &Response::error(ErrorKind::UnknownProfile, message.to_string()),
            )
            .await?;
            return Ok(Outcome::Answered);
        }
    };
    // A consumer asking again holds a token that failed it or expired.
    if let Some(consumer) = consumer {
        if let Some(held) = consumers.last_served(name, consumer) {
            if broker.reject(&held) {
                tracing::info!(
                    profile = name,
                    consumer,
                    "a consumer asked again for the token it was given: taken as refused"
                );
            }
        }
    }
    // Bounded: a chatty plugin and a client that reads slowly must not
    // grow the agent without end, nor hold up the run. Lines that do not
    // fit are dropped and counted, and the client is told how many.
    let (lines_sender, mut lines) = mpsc::channel::<String>(PROGRESS_QUEUE);
    let dropped = Arc::new(AtomicUsize::new(0));
    let request = TokenRequest::new()
        .interactive(interactive)
        .force(force)
        .keep_running(keep_running)
        .on_stderr({
            let dropped = dropped.clone();
            move |line| {
                // Called under the broker's lock, so one call at a time.
                let missed = dropped.load(Ordering::Relaxed);
                if missed > 0 {
                    if lines_sender.try_send(dropped_note(missed)).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    dropped.store(0, Ordering::Relaxed);
                }
                if lines_sender.try_send(line.to_owned()).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    let pending = broker.get(request);
    tokio::pin!(pending);
    let mut streamed = false;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut watch_reads = true;
    // Set once the client's input has ended.
    let mut hangup_check: Option<tokio::time::Interval> = None;
    let result = loop {
        tokio::select! {
            result = &mut pending => break result,
            Some(line) = lines.recv() => {
                streamed = true;
                send(writer, &Response::progress(&line)).await?
            }
            read = reader.fill_buf(), if watch_reads => match read {
                Err(_) => return Ok(Outcome::ClientGone),
                // End of input: the client hung up, or only shut down its
                // write side (`printf ... | nc -U`) and still waits for
                // the answer. Only the former cancels.
                Ok([]) => {
                    watch_reads = false;
                    if hung_up(writer) {
                        return Ok(Outcome::ClientGone);
                    }
                    hangup_check = Some(tokio::time::interval(HANGUP_CHECK));
                }
                // The client sent its next request already (it stays in the
                // buffer for later). It may still hang up before this answer:
                // watched for like a client that shut down its write side.
                Ok(_) => {
                    watch_reads = false;
                    if hung_up(writer) {
                        return Ok(Outcome::ClientGone);
                    }
                    hangup_check = Some(tokio::time::interval(HANGUP_CHECK));
                }
            },
            _ = heartbeat.tick() => send(writer, &Response::waiting()).await?,
            () = tick(&mut hangup_check), if hangup_check.is_some() => {
                if hung_up(writer) {
                    return Ok(Outcome::ClientGone);
                }
            }
        }
    };
    while let Ok(line) = lines.try_recv() {
        streamed = true;
        send(writer, &Response::progress(&line)).await?;
    }
    let missed = dropped.swap(0, Ordering::Relaxed);
    if missed > 0 {
        send(writer, &Response::progress(&dropped_note(missed))).await?;
    }
    if let (Some(consumer), Ok(issued)) = (consumer, &result) {
        consumers.served(name, consumer, issued.token.clone());
    }
    let response = match result {
        Ok(issued) => match issued.token.to_str() {
            Ok(text) => {
                let mut response = Response::ok();
                response.token = Some(WireToken::new(text.to_owned()));
                response.expires_at = issued.expires_at.map(crate::wire::unix_seconds);
                response
            }
            Err(_) => Response::error(ErrorKind::UnusableToken,
                "the plugin's token is not UTF-8 text and cannot be passed through the agent; use the broker library directly",
            ),
        },
        Err(error) => Response::error(error.kind().into(), in_the_users_words(&error, streamed)),
    };
    send(writer, &response).await?;
    Ok(Outcome::Answered)
}

/// A broker's error as the user of `authplug` should read it: the library's
/// hint (`TokenRequest::force`) becomes the command's (`--force`). The
/// client has shown the plugin's stderr as it came (`streamed`): then the
/// error need not repeat it as "its last words".
pub(super) fn in_the_users_words(error: &BrokerError, streamed: bool) -> String {
    let plain = |error: &BrokerError| {
        if streamed {
            error.summary()
        } else {
            error.to_string()
        }
    };
    match error {
        BrokerError::CoolingDown { remaining, error } => format!(
            "{}\nAn interactive login was not tried: after a failed one they are refused for the rest of the cool-down ({}s); to start one anyway, run `authplug token --force`",
            plain(error),
            remaining.as_secs().max(1)
        ),
        other => plain(other),
    }
}

/// How often a client that shut down its write side is checked for having
/// gone altogether.
pub(super) const HANGUP_CHECK: Duration = Duration::from_millis(100);

pub(super) async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether the peer has closed its socket (not just its write side: that
/// reads as end of input, while a full close also sets POLLHUP here).
pub(super) fn hung_up(writer: &OwnedWriteHalf) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stream: &UnixStream = writer.as_ref();
    // No events asked for: poll still reports hang-up and error.
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

/// Progress lines waiting for a slow client, at most (each line is at most
/// 4 KiB, so 1 MiB per client).
pub(super) const PROGRESS_QUEUE: usize = 256;

pub(super) fn dropped_note(count: usize) -> String {
    if count == 1 {
        "[1 line dropped]".to_owned()
    } else {
        format!("[{count} lines dropped]")
    }
}
