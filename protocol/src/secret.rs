//! Secret byte strings: the token and the plugin state.
//!
//! Both are zeroized when dropped and print as `REDACTED` in Debug output, so
//! a stray `{:?}` or `tracing` field can never leak them.

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// A value that must not be shown: Debug prints `REDACTED`, and the memory
/// is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(Zeroizing<T>);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The secret itself. The name is long on purpose: every use is a place
    /// where the value can escape, so it should stand out in review.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    pub fn expose_secret_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret::new(value)
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct $name(Secret<Vec<u8>>);

        impl $name {
            pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
                $name(Secret::new(bytes.into()))
            }

            pub fn as_bytes(&self) -> &[u8] {
                self.0.expose_secret()
            }

            /// The value as UTF-8 text, if it is.
            pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
                std::str::from_utf8(self.as_bytes())
            }

            pub fn len(&self) -> usize {
                self.as_bytes().len()
            }

            pub fn is_empty(&self) -> bool {
                self.as_bytes().is_empty()
            }
        }

        impl From<Vec<u8>> for $name {
            fn from(bytes: Vec<u8>) -> Self {
                $name::new(bytes)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name::new(text.into_bytes())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::new(text.as_bytes().to_vec())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(REDACTED, {} bytes)"), self.len())
            }
        }
    };
}

secret_bytes!(
    /// The credential a plugin prints on stdout: raw bytes, usually a bearer
    /// token or JWT.
    Token
);

secret_bytes!(
    /// The opaque bytes a plugin keeps between runs (read on stdin, written
    /// on fd 3). Only the plugin knows what is inside.
    State
);

/// A byte buffer that grows without leaving copies of its content behind:
/// when it needs more room it moves into a larger zeroizing buffer and wipes
/// the old one, which `Vec`'s own reallocation would not do.
pub(crate) struct SecretBuf {
    bytes: Zeroizing<Vec<u8>>,
    max_capacity: usize,
}

impl SecretBuf {
    /// `max_capacity` bounds the allocation; callers that read one byte past
    /// a limit pass `limit + 1`.
    pub(crate) fn new(max_capacity: usize) -> Self {
        SecretBuf {
            bytes: Zeroizing::new(Vec::new()),
            max_capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn extend_from_slice(&mut self, chunk: &[u8]) {
        let needed = self.bytes.len() + chunk.len();
        if needed > self.bytes.capacity() {
            let capacity = needed
                .max(self.bytes.capacity() * 2)
                .max(4096)
                .min(self.max_capacity.max(needed));
            let mut larger = Zeroizing::new(Vec::with_capacity(capacity));
            larger.extend_from_slice(&self.bytes);
            self.bytes = larger; // the old buffer is wiped as it drops
        }
        self.bytes.extend_from_slice(chunk);
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        // `Vec::truncate` keeps the capacity, which the zeroizer wipes in full.
        self.bytes.truncate(len);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let token = Token::from("eyJhbGciOiJSUzI1NiJ9.secret");
        let state = State::from("refresh-token-123");
        let secret = Secret::new(String::from("hunter2"));
        for shown in [
            format!("{token:?}"),
            format!("{state:?}"),
            format!("{secret:?}"),
        ] {
            assert!(shown.contains("REDACTED"), "{shown}");
            assert!(!shown.contains("secret") || shown.starts_with("Secret("));
            assert!(!shown.contains("hunter2") && !shown.contains("123"));
        }
    }

    #[test]
    fn secret_buf_keeps_every_byte_across_growth() {
        let mut buf = SecretBuf::new(1 << 20);
        let mut expected = Vec::new();
        for i in 0..1000u32 {
            let chunk = i.to_le_bytes().repeat((i % 7 + 1) as usize);
            buf.extend_from_slice(&chunk);
            expected.extend_from_slice(&chunk);
        }
        assert_eq!(buf.as_slice(), &expected[..]);
        assert_eq!(buf.len(), expected.len());
    }
}
