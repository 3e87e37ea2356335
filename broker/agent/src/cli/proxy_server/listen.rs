//! Where the proxy listens, and who may use it. Anyone who can use the
//! proxy acts with the user's token, so only the user may:
//!
//! - a unix socket is made 0600 (in a directory of the user's), and each
//!   peer's uid is checked at accept;
//! - on loopback TCP every local user can connect, so each request must
//!   start its path with the proxy's secret (random, 256 bits, made when
//!   the proxy starts and shown only to its user), and its `Host` must be
//!   this loopback address and port, so that a web page in the user's
//!   browser cannot reach the proxy through a name that resolves to
//!   127.0.0.1 (DNS rebinding).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A listening socket of the proxy.
pub struct Listener(Kind);

enum Kind {
    /// A unix socket, for its owner only.
    Unix {
        listener: UnixListener,
        path: PathBuf,
        uid: u32,
    },
    /// Loopback TCP, with a secret.
    Tcp {
        listener: TcpListener,
        address: SocketAddr,
        secret: String,
    },
}

/// What a request must show to be served.
#[derive(Debug, Clone)]
pub(super) enum Local {
    /// Anything that got through the unix socket's checks.
    Unix,
    /// The secret as the first path segment, and a loopback `Host`.
    Tcp { address: SocketAddr, secret: String },
}

impl Listener {
    /// A unix socket at `path`, mode 0600, its directory made (0700) if
    /// missing; a stale socket file there is replaced.
    pub fn unix(path: &Path) -> io::Result<Listener> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            authplug_agent::paths::socket_dir(dir)?;
        }
        // Only a stale socket is replaced: never a file of another kind.
        if let Ok(metadata) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !metadata.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket: choose another path",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("something already listens on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Listener(Kind::Unix {
            listener,
            path: path.to_owned(),
            uid: nix::unistd::geteuid().as_raw(),
        }))
    }

    /// Loopback TCP at `address` (port 0: any free one), with a new secret.
    pub async fn tcp(address: SocketAddr) -> io::Result<Listener> {
        if !address.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{address} is not a loopback address: the proxy hands out your token, so it listens on this machine only (127.0.0.1 or [::1])"),
            ));
        }
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        Ok(Listener(Kind::Tcp {
            listener,
            address,
            secret: new_secret()?,
        }))
    }

    /// The base URL clients use: the TCP address with the secret, or the
    /// unix socket's path.
    pub fn client_url(&self) -> String {
        match &self.0 {
            Kind::Unix { path, .. } => format!("unix:{}", path.display()),
            Kind::Tcp {
                address, secret, ..
            } => format!("http://{address}/{secret}"),
        }
    }

    pub(super) fn local(&self) -> Local {
        match &self.0 {
            Kind::Unix { .. } => Local::Unix,
            Kind::Tcp {
                address, secret, ..
            } => Local::Tcp {
                address: *address,
                secret: secret.clone(),
            },
        }
    }

    /// The next connection that may be served; a unix peer of another user
    /// is dropped unanswered.
    pub(super) async fn accept(&self) -> io::Result<Stream> {
        loop {
            match &self.0 {
                Kind::Unix { listener, uid, .. } => {
                    let (stream, _) = listener.accept().await?;
                    let peer = stream.peer_cred()?;
                    if peer.uid() != *uid {
                        tracing::warn!(peer_uid = peer.uid(), "refused a client of another user");
                        continue;
                    }
                    return Ok(Stream::Unix(stream));
                }
                Kind::Tcp { listener, .. } => {
                    let (stream, _) = listener.accept().await?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Stream::Tcp(stream));
                }
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Kind::Unix { path, .. } = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Local {
    /// The rest of the request's path (after the secret on TCP), or why it
    /// is refused.
    pub(super) fn admit<'p>(&self, path: &'p str, host: Option<&str>) -> Result<&'p str, Refusal> {
        match self {
            Local::Unix => Ok(path),
            Local::Tcp { address, secret } => {
                let port = address.port();
                let host_ok = host.is_some_and(|host| {
                    [
                        format!("127.0.0.1:{port}"),
                        format!("localhost:{port}"),
                        format!("[::1]:{port}"),
                        address.to_string(),
                    ]
                    .iter()
                    .any(|allowed| host.eq_ignore_ascii_case(allowed))
                });
                if !host_ok {
                    return Err(Refusal::Host);
                }
                let after_slash = path.strip_prefix('/').unwrap_or(path);
                let (first, rest) = match after_slash.find('/') {
                    Some(end) => after_slash.split_at(end),
                    None => (after_slash, ""),
                };
                // In constant time: how long a wrong guess took tells
                // nothing about the secret.
                if same_bytes(first.as_bytes(), secret.as_bytes()) {
                    Ok(rest)
                } else {
                    Err(Refusal::Secret)
                }
            }
        }
    }
}

/// Why a request is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its path does not start with the proxy's secret.
    Secret,
    /// Its `Host` is not this loopback address.
    Host,
}

/// Equal, compared in a time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// 32 random bytes from the kernel, hex.
fn new_secret() -> io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An accepted connection.
pub(super) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
