//! One client connection: its request lines read, their version checked
//! and parsed, each op answered (the token and logout ops in their own
//! files).

use std::io;
use std::sync::Arc;

use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::watch;
use zeroize::{Zeroize, Zeroizing};

use crate::wire::{
    ErrorKind, Op, ProfileStatus, Request, Response, Version, MAX_LINE, WIRE_VERSION,
};

use super::admission::Seat;
use super::lines::{read_line, send, Line};
use super::logout::logout_with_what_builds_on_it;
use super::token::{token, Ask, Outcome};
use super::{Served, IDLE_TIMEOUT};

pub(super) async fn connection(
    stream: UnixStream,
    uid: u32,
    served: Arc<Served>,
    stop: Arc<watch::Sender<bool>>,
    mut seat: Seat,
) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read_half, mut writer) = stream.into_split();
    if peer.uid() != uid {
        tracing::warn!(peer_uid = peer.uid(), peer_pid = ?peer.pid(), "refused a client of another user");
        let refusal = Response::error(
            ErrorKind::Forbidden,
            format!(
                "refused: this agent serves uid {uid} only, and you are uid {}",
                peer.uid()
            ),
        );
        send(&mut writer, &refusal).await?;
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut line = Zeroizing::new(Vec::new());
    loop {
        line.clear();
        seat.release();
        seat.waiting(true);
        let read = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut line, &mut seat));
        let read = match read.await {
            Ok(read) => read?,
            Err(_) => Line::Idle,
        };
        seat.waiting(false);
        match read {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                let error = Response::error(
                    ErrorKind::BadRequest,
                    format!("request line longer than {MAX_LINE} bytes; closing the connection"),
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Idle => {
                let error = Response::error(
                    ErrorKind::BadRequest,
                    format!(
                        "no whole request line within {} seconds; closing the connection",
                        IDLE_TIMEOUT.as_secs()
                    ),
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Busy => {
                let error = Response::error(
                    ErrorKind::Busy,
                    "the agent holds too much unfinished input from its clients; closing this \
                     connection, try again in a moment",
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Complete => {}
        }
        // Parsed below; the budget is for unfinished lines.
        seat.release();
        let malformed = |error: serde_json::Error| {
            Response::error(ErrorKind::BadRequest, format!(
                "malformed request ({error}): send one JSON object per line, like {{\"v\":{WIRE_VERSION},\"op\":\"token\"}}"
            ))
        };
        // The version decides before anything else does: a request of
        // another version is told so even if the rest makes no sense here
        // (an op added later). Parsing `v` alone only when the whole
        // request fails keeps the common case to one parse.
        let parsed = match serde_json::from_slice::<Request>(&line) {
            Ok(request) if request.v == WIRE_VERSION => Ok(request),
            Ok(request) => Err(Refusal::OtherVersion(request.v)),
            Err(error) => Err(match serde_json::from_slice::<Version>(&line) {
                Ok(Version { v }) if v != WIRE_VERSION => Refusal::OtherVersion(v),
                _ => Refusal::Malformed(error),
            }),
        };
        line.zeroize();
        let request = match parsed {
            Ok(request) => request,
            Err(Refusal::OtherVersion(v)) => {
                send(
                    &mut writer,
                    &Response::error(ErrorKind::OtherVersion, other_version(v)),
                )
                .await?;
                continue;
            }
            Err(Refusal::Malformed(error)) => {
                send(&mut writer, &malformed(error)).await?;
                continue;
            }
        };
        tracing::debug!(op = ?request.op, "request");
        let profiles = match &request.op {
            Op::Token { profile, .. }
            | Op::Reject { profile, .. }
            | Op::RejectCurrent { profile, .. }
            | Op::Logout { profile } => served.profiles.for_profile(profile.as_deref()),
            _ => served.profiles.current(),
        };
        match request.op {
            Op::Token {
                profile,
                interactive,
                force,
                consumer,
                keep_running,
            } => {
                let ask = Ask {
                    profile: profile.as_deref(),
                    interactive,
                    force,
                    consumer: consumer.as_deref(),
                    keep_running,
                };
                let outcome =
                    token(&profiles, &served.consumers, ask, &mut reader, &mut writer).await?;
                if outcome == Outcome::ClientGone {
                    return Ok(());
                }
            }
            Op::Reject {
                challenge: Some(challenge),
                ..
            }
            | Op::RejectCurrent {
                challenge: Some(challenge),
                ..
            } if !authplug_protocol::challenge::usable(&challenge) => {
                let refusal = Response::error(ErrorKind::BadRequest, format!(
                    "the challenge is not a usable WWW-Authenticate value (at most {} bytes of visible ASCII and spaces)",
                    authplug_protocol::challenge::CHALLENGE_LIMIT
                ));
                send(&mut writer, &refusal).await?;
            }
            Op::Reject {
                profile,
                mut token,
                challenge,
            } => {
                // Moved out, not copied: what is left to wipe is empty.
                let token = authplug_broker::Token::from(std::mem::take(token.expose_secret_mut()));
                let response = match profiles.get(profile.as_deref()) {
                    Ok((_, broker)) => {
                        let mut response = Response::ok();
                        response.cleared =
                            Some(broker.reject_challenged(&token, challenge.as_deref()));
                        response
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::RejectCurrent { profile, challenge } => {
                let response = match profiles.get(profile.as_deref()) {
                    Ok((_, broker)) => {
                        let mut response = Response::ok();
                        response.cleared =
                            Some(broker.reject_current_challenged(challenge.as_deref()));
                        response
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::Logout { profile } => {
                let response = match profiles.get(profile.as_deref()) {
                    Ok((name, broker)) => {
                        logout_with_what_builds_on_it(&profiles, name, broker, &mut writer).await?
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::Status => {
                let default = profiles.default_name();
                let mut response = Response::ok();
                response.profiles = Some(
                    profiles
                        .iter()
                        .map(|(name, broker)| {
                            ProfileStatus::new(name, Some(name) == default, &broker.status())
                        })
                        .collect(),
                );
                send(&mut writer, &response).await?;
            }
            Op::Stop => {
                send(&mut writer, &Response::ok()).await?;
                tracing::info!("stop requested by a client");
                stop.send_replace(true);
                return Ok(());
            }
        }
    }
}

pub(super) enum Refusal {
    OtherVersion(u32),
    Malformed(serde_json::Error),
}

pub(super) fn other_version(v: u32) -> String {
    format!(
        "this agent speaks protocol version {WIRE_VERSION}, not {v}: restart it with the same authplug version as the client (`authplug stop`)"
    )
}
