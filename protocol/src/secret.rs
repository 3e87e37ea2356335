//! Secret byte strings: the token and the plugin state.
//!
//! Both are zeroized when dropped and print as `REDACTED` in Debug output, so
//! a stray `{:?}` or `tracing` field can never leak them.

use std::fmt;
#[cfg(feature = "host")]
use std::os::fd::{AsRawFd, BorrowedFd};

use zeroize::{Zeroize, Zeroizing};

/// A value that must not be shown: Debug prints `REDACTED`, and the memory
/// is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(Zeroizing<T>);

impl<T: Zeroize> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The secret itself. The name is long on purpose: every use is a place
    /// where the value can escape, so it should stand out in review.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    /// The secret itself, to change in place (see [`Secret::expose_secret`]).
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

/// With the `serde` feature: a secret is written and read as its value
/// (for the formats that carry it: a plugin's state, the agent's socket).
/// Debug stays redacted.
#[cfg(feature = "serde")]
impl<T: Zeroize + serde::Serialize> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.expose_secret().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Zeroize + serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret::new)
    }
}

/// Overwrites `bytes` with zeros in a way the compiler may not remove:
/// volatile stores, a machine word at a time (the `zeroize` crate's are a
/// byte at a time, which costs milliseconds on a 10 MiB state).
pub(crate) fn wipe(bytes: &mut [u8]) {
    // SAFETY: any bit pattern is a valid u64, and `align_to_mut` only hands
    // out words that are aligned and inside `bytes`.
    let (head, words, tail) = unsafe { bytes.align_to_mut::<u64>() };
    for byte in head.iter_mut().chain(tail.iter_mut()) {
        // SAFETY: a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    for word in words {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(word, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The storage of [`Token`] and [`State`]: wiped, spare capacity included,
/// when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
struct WipedBytes(Vec<u8>);

impl Drop for WipedBytes {
    fn drop(&mut self) {
        let len = self.0.len();
        wipe(&mut self.0);
        // The spare capacity may hold bytes from before a truncation.
        let spare = self.0.spare_capacity_mut();
        // SAFETY: writing zeros into `MaybeUninit<u8>`s initialises them.
        let spare = unsafe { &mut *(spare as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        wipe(spare);
        debug_assert_eq!(self.0.len(), len);
    }
}

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct $name(WipedBytes);

        impl $name {
            /// Takes the bytes (wiped when dropped).
            pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
                $name(WipedBytes(bytes.into()))
            }

            /// The bytes themselves.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0 .0
            }

            /// The value as UTF-8 text, if it is.
            pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
                std::str::from_utf8(self.as_bytes())
            }

            /// How many bytes.
            pub fn len(&self) -> usize {
                self.as_bytes().len()
            }

            /// No bytes at all.
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

/// A byte buffer for secrets read from a pipe, built so that reading up to
/// the protocol's limits costs one pass over the data:
///
/// - It starts at 4 KiB, then 64 KiB; past that it reserves its whole
///   `max_capacity` at once. The reservation is virtual memory: only pages that data reaches
///   are ever touched, so a 10 MiB limit costs nothing for a small state,
///   and a large state is never copied while it grows.
/// - Reads go straight into the spare capacity
///   ([`SecretBuf::poll_read_from`]).
/// - Growing never leaves a copy behind (the old buffer is wiped, which
///   `Vec`'s own reallocation would not do), and dropping wipes every byte
///   ever written, but not the untouched reservation.
pub(crate) struct SecretBuf {
    bytes: Vec<u8>,
    max_capacity: usize,
}

/// The first allocation (a token fits), then the second.
const INITIAL_CAPACITY: usize = 4 * 1024;
const SECOND_CAPACITY: usize = 64 * 1024;

/// The most spare room a finished buffer may carry before
/// [`SecretBuf::into_vec`] moves it into an exact fit (its owner wipes the
/// spare room too, so a small token must not drag 64 KiB along).
const MAX_SPARE: usize = 4096;

impl SecretBuf {
    /// `max_capacity` bounds the allocation; callers that read one byte past
    /// a limit pass `limit + 1`.
    pub(crate) fn new(max_capacity: usize) -> Self {
        SecretBuf {
            bytes: Vec::new(),
            max_capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Moves the bytes into a buffer of `capacity` and wipes the old one.
    fn move_to(&mut self, capacity: usize) {
        let mut larger = Vec::with_capacity(capacity);
        larger.extend_from_slice(&self.bytes);
        let mut old = std::mem::replace(&mut self.bytes, larger);
        wipe(&mut old);
    }

    /// Room for at least `more` bytes: 4 KiB, 64 KiB, then the whole
    /// reservation (or more, if a caller asks past it).
    fn reserve(&mut self, more: usize) {
        let needed = self.bytes.len() + more;
        if needed <= self.bytes.capacity() {
            return;
        }
        let step = if self.bytes.capacity() < INITIAL_CAPACITY {
            INITIAL_CAPACITY.min(self.max_capacity)
        } else if self.bytes.capacity() < SECOND_CAPACITY {
            SECOND_CAPACITY.min(self.max_capacity)
        } else {
            self.max_capacity
        };
        self.move_to(step.max(needed));
    }

    pub(crate) fn extend_from_slice(&mut self, chunk: &[u8]) {
        self.reserve(chunk.len());
        self.bytes.extend_from_slice(chunk);
    }

    #[cfg(feature = "host")]
    /// One read from `reader` straight into the buffer; `Ok(0)` is EOF. At
    /// most `max_capacity` bytes are ever held: once full, it reads nothing
    /// more and reports 0.
    pub(crate) fn poll_read_from<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        reader: &mut R,
    ) -> std::task::Poll<std::io::Result<usize>>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        let room = self.max_capacity.saturating_sub(self.bytes.len());
        if room == 0 {
            return std::task::Poll::Ready(Ok(0));
        }
        self.reserve(1);
        // Into the spare capacity as it is: growing is `reserve`'s job, which
        // wipes what it leaves behind.
        let spare = self.bytes.spare_capacity_mut();
        let spare_len = spare.len().min(room);
        let mut read = tokio::io::ReadBuf::uninit(&mut spare[..spare_len]);
        std::task::ready!(std::pin::Pin::new(reader).poll_read(cx, &mut read))?;
        let filled = read.filled().len();
        // SAFETY: the reader initialised the first `filled` bytes of the
        // spare capacity (ReadBuf tracks exactly that).
        unsafe { self.bytes.set_len(self.bytes.len() + filled) };
        std::task::Poll::Ready(Ok(filled))
    }

    #[cfg(feature = "host")]
    /// One read from `fd` (non-blocking) straight into the buffer, without
    /// the runtime; `Ok(0)` is EOF, `WouldBlock` means nothing is there now.
    /// Bounded by `max_capacity` like [`SecretBuf::poll_read_from`].
    pub(crate) fn read_available(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<usize> {
        let room = self.max_capacity.saturating_sub(self.bytes.len());
        if room == 0 {
            return Ok(0);
        }
        self.reserve(1);
        let spare = self.bytes.spare_capacity_mut();
        let spare_len = spare.len().min(room);
        loop {
            // SAFETY: read(2) writes at most `spare_len` bytes into the spare
            // capacity, which is that large.
            let read = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare_len) };
            if read < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            let read = read as usize;
            // SAFETY: read(2) initialised the first `read` bytes.
            unsafe { self.bytes.set_len(self.bytes.len() + read) };
            return Ok(read);
        }
    }

    #[cfg(feature = "host")]
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.bytes.len() {
            wipe(&mut self.bytes[len..]);
            self.bytes.truncate(len);
        }
    }

    #[cfg(feature = "host")]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes as a `Vec`. A large untouched reservation is not handed on
    /// (the zeroizing owner would wipe, and so touch, all of it): such a
    /// buffer is copied into an exact fit and wiped.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        if self.bytes.capacity() - self.bytes.len() > MAX_SPARE {
            let exact = self.bytes.clone();
            return exact; // `self` wipes its copy as it drops
        }
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        // Every written byte lies below `len` (truncate wipes what it
        // drops), so the untouched rest of the reservation stays untouched.
        wipe(&mut self.bytes);
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

    #[test]
    fn wipe_clears_every_byte_at_any_alignment() {
        let mut bytes: Vec<u8> = (1..=200u8).collect();
        wipe(&mut bytes[3..197]);
        assert!(bytes[3..197].iter().all(|&b| b == 0));
        assert_eq!((bytes[2], bytes[197]), (3, 198));
    }

    #[tokio::test]
    async fn read_from_reads_past_the_first_step_and_stops_at_the_cap() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut buf = SecretBuf::new(150_001);
        let mut reader = &data[..];
        while std::future::poll_fn(|cx| buf.poll_read_from(cx, &mut reader))
            .await
            .unwrap()
            > 0
        {}
        assert_eq!(buf.len(), 150_001);
        assert_eq!(buf.as_slice(), &data[..150_001]);
        buf.truncate(10);
        let small = buf.into_vec();
        assert_eq!(small, &data[..10]);
        assert_eq!(
            small.capacity(),
            10,
            "a large spare reservation is not handed on"
        );
    }
}
