//! git's credential helper protocol (git-credential(1), "INPUT/OUTPUT
//! FORMAT"), as far as `git-credential-authplug` speaks it: the
//! description git writes on a helper's stdin, and the answer to `get`.
//!
//! What it is not: it knows nothing of the agent or of profiles (the
//! `git-credential-authplug` binary does), and it stores nothing.

use std::io::Read;

use authplug_protocol::Secret;
use zeroize::Zeroizing;

/// Longest description read from git: far more than any git sends.
pub const MAX_INPUT: u64 = 64 * 1024;

/// What git asks a helper to do (its last argument).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Give a credential for the description.
    Get,
    /// The credential worked: keep it (a token from the agent needs no
    /// keeping).
    Store,
    /// The credential was refused: forget it.
    Erase,
    /// An operation of a newer git, which a helper must ignore.
    Other(String),
}

impl Operation {
    /// The operation git names.
    pub fn parse(name: &str) -> Operation {
        match name {
            "get" => Operation::Get,
            "store" => Operation::Store,
            "erase" => Operation::Erase,
            other => Operation::Other(other.to_owned()),
        }
    }
}

/// The attributes git describes a credential with; those not needed here
/// are read and dropped.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Description {
    /// `protocol`: `https`, `http`...
    pub protocol: Option<String>,
    /// `host`, with `:PORT` when not the protocol's default.
    pub host: Option<String>,
    /// `capability[]`: what this git understands (`authtype`).
    pub capabilities: Vec<String>,
    /// `password`, on `store` and `erase`.
    pub password: Option<Secret<String>>,
    /// `credential` (with `authtype`), on `store` and `erase`.
    pub credential: Option<Secret<String>>,
}

impl Description {
    /// Reads `key=value` lines up to a blank line or the end of input
    /// (at most [`MAX_INPUT`] bytes).
    pub fn read(input: impl Read) -> Result<Description, String> {
        let mut text = Zeroizing::new(String::new());
        input
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(|error| format!("cannot read what git sent on stdin: {error}"))?;
        let mut description = Description::default();
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "git sent a line that is not key=value ({:?}); is this helper run by git?",
                    line.chars().take(40).collect::<String>()
                ));
            };
            match key {
                "protocol" => description.protocol = Some(value.to_owned()),
                "host" => description.host = Some(value.to_owned()),
                "capability[]" => description.capabilities.push(value.to_owned()),
                "password" => description.password = Some(Secret::new(value.to_owned())),
                "credential" => description.credential = Some(Secret::new(value.to_owned())),
                _ => {}
            }
        }
        Ok(description)
    }

    /// Whether git takes a credential with an `authtype` (git 2.46 and
    /// later): then the token goes as `Authorization: Bearer`.
    pub fn takes_authtype(&self) -> bool {
        self.capabilities.iter().any(|c| c == "authtype")
    }

    /// The token git reports refused, on `erase`: the `credential` or the
    /// `password`.
    pub fn take_refused_token(&mut self) -> Option<Secret<String>> {
        self.credential.take().or_else(|| self.password.take())
    }
}

/// The answer to `get`: the token as a bearer credential when git takes
/// one, else as the password of `username` (with its expiry, Unix
/// seconds, when known). `None` if the token cannot travel in git's
/// line-based format.
pub fn answer(
    description: &Description,
    token: &str,
    username: &str,
    expires_at: Option<u64>,
) -> Option<Zeroizing<String>> {
    if token.is_empty() || token.contains(['\n', '\r', '\0']) || username.contains(['\n', '\0']) {
        return None;
    }
    let mut out = Zeroizing::new(String::new());
    if description.takes_authtype() {
        // `ephemeral`: no other helper should store it; it expires.
        out.push_str("capability[]=authtype\nauthtype=Bearer\ncredential=");
        out.push_str(token);
        out.push_str("\nephemeral=1\n");
    } else {
        out.push_str("username=");
        out.push_str(username);
        out.push_str("\npassword=");
        out.push_str(token);
        out.push('\n');
        if let Some(expiry) = expires_at {
            out.push_str(&format!("password_expiry_utc={expiry}\n"));
        }
    }
    Some(out)
}

/// What to tell git when no credential can be had, so that it does not
/// go on to ask the user for a password that would not help either.
pub const GIVE_UP: &str = "quit=1\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_git_sends_and_answers_in_the_form_it_takes() {
        let input = "capability[]=authtype\nprotocol=https\nhost=git.example:8443\nwwwauth[]=Bearer realm=\"x\"\n\nignored=after the blank line\n";
        let description = Description::read(input.as_bytes()).unwrap();
        assert_eq!(description.host.as_deref(), Some("git.example:8443"));
        assert!(description.takes_authtype());
        let bearer = answer(&description, "tok", "oauth2", Some(7)).unwrap();
        assert_eq!(
            &*bearer,
            "capability[]=authtype\nauthtype=Bearer\ncredential=tok\nephemeral=1\n"
        );

        let old_git = Description::read("protocol=https\nhost=h\n".as_bytes()).unwrap();
        let basic = answer(&old_git, "tok", "oauth2", Some(7)).unwrap();
        assert_eq!(
            &*basic,
            "username=oauth2\npassword=tok\npassword_expiry_utc=7\n"
        );
        assert!(answer(&old_git, "to\nk", "oauth2", None).is_none());
        assert!(answer(&old_git, "", "oauth2", None).is_none());

        let mut erase =
            Description::read("protocol=https\nhost=h\nusername=oauth2\npassword=old\n".as_bytes())
                .unwrap();
        assert_eq!(erase.take_refused_token().unwrap().expose_secret(), "old");
        assert!(Description::read("nonsense\n".as_bytes()).is_err());
        assert_eq!(
            Operation::parse("capability"),
            Operation::Other("capability".into())
        );
    }
}
