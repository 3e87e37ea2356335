//! Request lines in, answer lines out: bounded reading, and one JSON line
//! per answer.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zeroize::Zeroizing;

use crate::wire::{Response, MAX_LINE};

use super::admission::Seat;

pub(super) enum Line {
    Complete,
    Eof,
    TooLong,
    /// No whole line within [`IDLE_TIMEOUT`].
    Idle,
    /// The agent-wide budget for unfinished lines ([`MAX_BUFFERED`]) is spent.
    Busy,
}

/// Reads one line (without its newline) into `line`, at most [`MAX_LINE`]
/// bytes, each taken from the agent-wide budget first. A last line without
/// a newline counts.
pub(super) async fn read_line(
    reader: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    seat: &mut Seat,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (chunk, found) = match memchr(available) {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        if line.len() + chunk.len() >= MAX_LINE {
            return Ok(Line::TooLong);
        }
        if !seat.hold(chunk.len()) {
            return Ok(Line::Busy);
        }
        line.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(found);
        reader.consume(used);
        if found {
            return Ok(Line::Complete);
        }
    }
}

pub(super) fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

pub(super) async fn send(writer: &mut OwnedWriteHalf, response: &Response) -> io::Result<()> {
    let mut bytes = Zeroizing::new(serde_json::to_vec(response).map_err(io::Error::other)?);
    bytes.push(b'\n');
    writer.write_all(&bytes).await
}
