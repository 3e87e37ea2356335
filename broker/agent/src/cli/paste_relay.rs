//! Paste-back through the agent, for the commands that ask it for a token
//! (`authplug token`, `exec`, `kubectl`, `git-credential-authplug`). A
//! plugin the agent runs has no terminal, so when its browser login runs
//! in a browser on another machine (a session over SSH), that browser ends
//! on the plugin's loopback redirect, which it cannot reach. The user
//! pastes that address where they asked for the token; the address is this
//! machine's loopback, so this command requests it, as the browser would
//! have. The plugin's listener then judges it by its own rules (state,
//! RFC 9207 `iss`; PKCE at the token endpoint): nothing here decides
//! whether a login succeeds.
//!
//! Only while a plugin's run shows progress (a login prints its address),
//! only in the terminal's foreground, and only until the token arrives:
//! `authplug exec` then gives the terminal to its command.

use std::io::Write;
use std::time::Duration;

use authplug_protocol::terminal::{Line, Next, TerminalLines};

/// A line on stderr, which the user watches while logging in; a closed
/// stderr is no reason to stop.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The pasted address is requested with this deadline: the listener
/// answers at once.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays pasted addresses while it lives, once started.
#[derive(Default)]
pub struct PasteRelay {
    reader: Option<TerminalLines>,
    tried: bool,
}

impl PasteRelay {
    /// Starts reading the terminal, the first time only. Does nothing
    /// without a terminal in whose foreground this process runs.
    pub fn start_once(&mut self) {
        if std::mem::replace(&mut self.tried, true) {
            return;
        }
        self.reader = TerminalLines::start(|line| {
            match line {
                Line::Text("") => {}
                Line::Text(text) => relay(text),
                Line::Unreadable => {
                    note!("authplug: that line could not be read; paste the address again")
                }
            }
            Next::More
        });
    }
}

fn relay(text: &str) {
    let Some(address) = loopback_address(text) else {
        note!(
            "authplug: only the address the browser was sent to after the login can be pasted here \
             (it starts with http://127.0.0.1: or http://localhost:)"
        );
        return;
    };
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .build();
    let answer = client.and_then(|client| client.get(address).send());
    match answer {
        Ok(response) if response.status().is_success() => {
            note!("authplug: the pasted address reached the login")
        }
        Ok(response) => note!(
            "authplug: the login did not take the pasted address (HTTP {}): it is not this login's, or the login failed (see above)",
            response.status().as_u16()
        ),
        Err(error) if error.is_connect() => note!(
            "authplug: nothing listens at the pasted address: the login it belongs to has ended"
        ),
        Err(_) => note!("authplug: cannot deliver the pasted address to the login"),
    }
}

/// The pasted line as an http address on this machine's loopback; a
/// missing `http://` is added (some browsers hide it).
fn loopback_address(text: &str) -> Option<reqwest::Url> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = reqwest::Url::parse(&with_scheme).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (url.scheme() == "http" && loopback && url.query().is_some()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::loopback_address;

    #[test]
    fn only_loopback_http_addresses_with_a_query_are_relayed() {
        for good in [
            "http://127.0.0.1:4242/callback?code=c&state=s",
            "127.0.0.1:4242/callback?code=c&state=s",
            "http://localhost:1/cb?error=access_denied&state=s",
            "http://[::1]:9/callback?code=c",
        ] {
            assert!(loopback_address(good).is_some(), "{good}");
        }
        for bad in [
            "https://127.0.0.1:4242/callback?code=c",
            "http://example.com/callback?code=c&state=s",
            "http://127.0.0.1.example.com/callback?code=c",
            "http://127.0.0.1:4242/callback",
            "the code is 1234",
            "",
        ] {
            assert!(loopback_address(bad).is_none(), "{bad}");
        }
    }
}
