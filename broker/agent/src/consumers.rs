//! Which token each *consumer* was last given: for programs that keep the
//! token they get and ask again only when it failed them or expired, and
//! cannot say which. kubectl is one: client-go runs its exec plugin again
//! after a 401 with the same input as the first time. A request naming a
//! consumer that was served before first rejects the token it was given
//! (compare-and-clear: a newer token got meanwhile is kept), so the ask
//! that follows a 401 gets a new token, not the refused one.

use std::collections::VecDeque;
use std::sync::Mutex;

use authplug_broker::Token;

/// Consumers remembered at most: the oldest is forgotten first (it then
/// gets, at worst, the token it holds once more, as without a name).
pub const MAX_CONSUMERS: usize = 256;

struct Served {
    profile: String,
    consumer: String,
    token: Token,
}

/// The last token each (profile, consumer) got, in memory only.
#[derive(Default)]
pub struct Consumers {
    served: Mutex<VecDeque<Served>>,
}

impl Consumers {
    /// The token `consumer` was last given for `profile`, if remembered.
    pub fn last_served(&self, profile: &str, consumer: &str) -> Option<Token> {
        self.lock()
            .iter()
            .find(|s| s.profile == profile && s.consumer == consumer)
            .map(|s| s.token.clone())
    }

    /// Remembers that `consumer` got `token` for `profile`.
    pub fn served(&self, profile: &str, consumer: &str, token: Token) {
        let mut served = self.lock();
        served.retain(|s| !(s.profile == profile && s.consumer == consumer));
        if served.len() == MAX_CONSUMERS {
            served.pop_front();
        }
        served.push_back(Served {
            profile: profile.to_owned(),
            consumer: consumer.to_owned(),
            token,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Served>> {
        self.served
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_token_per_profile_and_consumer_and_the_oldest_forgotten() {
        let consumers = Consumers::default();
        consumers.served("work", "kubectl:1", Token::from("a"));
        consumers.served("home", "kubectl:1", Token::from("b"));
        consumers.served("work", "kubectl:1", Token::from("c"));
        assert_eq!(
            consumers.last_served("work", "kubectl:1"),
            Some(Token::from("c"))
        );
        assert_eq!(
            consumers.last_served("home", "kubectl:1"),
            Some(Token::from("b"))
        );
        assert_eq!(consumers.last_served("work", "kubectl:2"), None);
        for n in 0..MAX_CONSUMERS {
            consumers.served("work", &format!("other:{n}"), Token::from("x"));
        }
        assert_eq!(consumers.last_served("work", "kubectl:1"), None);
        assert_eq!(consumers.lock().len(), MAX_CONSUMERS);
    }
}
