//! Paste-back: a browser login whose browser runs on another machine (a
//! session over SSH, a provider without a device flow). After the login the
//! browser is sent to our loopback redirect, which it cannot reach there;
//! the user copies that address from its address bar and pastes it on the
//! terminal, which we read on `/dev/tty` (stdin carries the state).
//!
//! A pasted address is judged by [`callback::judge`], the listener's own
//! rules: its `state`, the provider's error, RFC 9207's `iss`; PKCE then
//! binds the code to this login at the token endpoint. A pasted bare code
//! has no `state` to check (PKCE still binds it), so it is taken only from
//! a provider that does not promise `iss` in its responses.
//!
//! The listener keeps listening meanwhile: whichever comes first wins.

use std::sync::Arc;

use authplug_protocol::terminal::{Line, Next, TerminalLines};
use tokio::sync::mpsc;

use crate::callback::{self, CallbackError, Code, Expected, Verdict};
use crate::messages::say;

/// Pasted login responses, read until one ends the login. `None` when
/// there is no terminal to read (the plugin runs under the agent, or with
/// the terminal kept by its host).
pub fn ask(expected: Arc<Expected>) -> Option<(TerminalLines, Pasted)> {
    let (tx, rx) = mpsc::channel(1);
    let reader = TerminalLines::start(move |line| match line {
        Line::Text("") => Next::More,
        Line::Unreadable => {
            say("that was not an address authplug can read; paste the address again");
            Next::More
        }
        Line::Text(text) => match read_pasted(text, &expected) {
            Some(outcome) => {
                let _ = tx.try_send(outcome);
                Next::Done
            }
            None => Next::More,
        },
    })?;
    Some((reader, Pasted(rx)))
}

/// The outcome of the first pasted line that ends the login.
pub struct Pasted(mpsc::Receiver<Result<Code, CallbackError>>);

impl Pasted {
    /// Waits for it; never returns if the reader stops without one (the
    /// listener or the timeout ends the wait then).
    pub async fn next(&mut self) -> Result<Code, CallbackError> {
        match self.0.recv().await {
            Some(outcome) => outcome,
            None => std::future::pending().await,
        }
    }
}

/// A pasted line: the whole address (with or without its scheme), its
/// query alone, or a bare code. `None`: not this login's, said why, ask
/// again.
fn read_pasted(text: &str, expected: &Expected) -> Option<Result<Code, CallbackError>> {
    // A query alone names its parameters; a bare code may end in `=`
    // (padded base64).
    let looks_like_query = ["code=", "state=", "error=", "iss="]
        .iter()
        .any(|name| text.starts_with(name) || text.contains(&format!("&{name}")));
    let query = match text.split_once('?') {
        Some((_, query)) => Some(query),
        None if looks_like_query => Some(text),
        None => None,
    };
    let Some(query) = query else {
        return bare_code(text, expected);
    };
    // A fragment is not the response (response_mode=query).
    let query = query.split('#').next().unwrap_or("");
    let params = callback::query_params(query);
    // Neither a code nor an error: not a login's response at all (the
    // login's own address, say), whatever its state; asked again.
    if !params.contains_key("code") && !params.contains_key("error") {
        say("that address has no code; paste the one the browser was sent to after you logged in (it starts with the redirect address)");
        return None;
    }
    match callback::judge(&params, expected) {
        Verdict::NotThisLogin => {
            say("that address is not from this login (its state is missing or wrong); paste the address the browser was sent to after this login");
            None
        }
        Verdict::Code(code) => Some(Ok(code)),
        Verdict::Failed(failure) => Some(Err(failure)),
    }
}

fn bare_code(text: &str, expected: &Expected) -> Option<Result<Code, CallbackError>> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        say("that is neither an address nor a code; paste the address the browser was sent to");
        return None;
    }
    if let Some(failure) = callback::issuer_problem(None, expected) {
        say(&format!(
            "{failure}: paste the whole address the browser was sent to, not only its code"
        ));
        return None;
    }
    Some(Ok(Code(openidconnect::AuthorizationCode::new(
        text.to_owned(),
    ))))
}
