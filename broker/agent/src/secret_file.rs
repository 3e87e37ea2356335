//! Reading a file that holds secrets (a plugin's state, a config with client
//! secrets) so that no unwiped copy is left in memory: one buffer, sized
//! before the first read and never grown (a grown buffer leaves its old
//! allocation behind as it was), wiped when dropped.

use std::fs::File;
use std::io::{self, Read};

use zeroize::Zeroizing;

/// Why a secret file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    #[error("{0}")]
    /// Reading failed.
    Io(#[from] io::Error),
    #[error("it is larger than the limit of {limit} bytes")]
    /// Over the limit; nothing more was read.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    #[error("it grew while it was being read; try again")]
    /// It grew while it was read.
    Grew,
}

/// All of `file`, at most `limit` bytes, in one wiped allocation.
pub fn read(file: &mut File, limit: usize) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let too_large = SecretFileError::TooLarge { limit };
    let metadata = file.metadata()?;
    // A regular file says its size; a pipe (`--state-in <(...)`) or a
    // device does not, so it gets room for the limit (untouched memory
    // until read into).
    let room = if metadata.is_file() {
        match usize::try_from(metadata.len()) {
            Ok(size) if size <= limit => size,
            _ => return Err(too_large),
        }
    } else {
        limit
    };
    // One byte more, to notice a file that grew since, or a pipe over the
    // limit.
    let mut buffer = Zeroizing::new(vec![0u8; room + 1]);
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if filled > limit {
        return Err(too_large);
    }
    if filled > room {
        return Err(SecretFileError::Grew);
    }
    // Shortening never moves the bytes.
    buffer.truncate(filled);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, bytes).expect("write");
        (dir, path)
    }

    #[test]
    fn a_regular_file_is_read_into_one_buffer_of_its_size() {
        let secret = vec![b's'; 100_000];
        let (_dir, path) = file_with(&secret);
        let mut file = File::open(&path).expect("open");
        let bytes = read(&mut file, 1 << 20).expect("read");
        assert_eq!(bytes.as_slice(), secret.as_slice());
        // Sized once from the metadata: never grown, so never copied.
        assert_eq!(bytes.capacity(), secret.len() + 1);
    }

    #[test]
    fn over_the_limit_is_refused_from_a_file_and_from_a_pipe() {
        let (_dir, path) = file_with(&[b'x'; 11]);
        let mut file = File::open(&path).expect("open");
        assert!(matches!(
            read(&mut file, 10),
            Err(SecretFileError::TooLarge { limit: 10 })
        ));

        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        let mut writer = File::from(writer);
        writer.write_all(&[b'x'; 11]).expect("write");
        drop(writer);
        let mut reader = File::from(reader);
        assert!(matches!(
            read(&mut reader, 10),
            Err(SecretFileError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn a_pipe_within_the_limit_is_read_whole() {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        let mut writer = File::from(writer);
        writer.write_all(b"state").expect("write");
        drop(writer);
        let mut reader = File::from(reader);
        assert_eq!(read(&mut reader, 10).expect("read").as_slice(), b"state");
    }
}
