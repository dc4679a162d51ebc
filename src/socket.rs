//! Binding the daemon's Unix socket: folders created, a leftover socket
//! from a dead daemon replaced, a live daemon or a foreign file left alone,
//! and the file removed again when the daemon stops.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tracing::info;

/// Why the socket could not be bound. Its message names the path.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket {path}: another daemon is already listening there; stop it or choose another --socket")]
    InUse { path: PathBuf },

    #[error("socket {path}: a file that is not a socket is in the way; move it or choose another --socket")]
    NotASocket { path: PathBuf },

    #[error("socket {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

/// The socket file this daemon created. Dropping it removes the file,
/// unless another daemon has replaced it since.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
}

/// Binds a listener at `path` with the given file mode.
pub fn bind(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), SocketError> {
    let io = |action: &'static str| {
        move |source| SocketError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("cannot create its folder"))?;
    }
    clear_leftover(path)?;

    let listener = UnixListener::bind(path).map_err(io("cannot bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("cannot set its mode"))?;
    let inode = std::fs::symlink_metadata(path)
        .map_err(io("cannot read it back"))?
        .ino();
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            inode,
        },
    ))
}

/// Removes a socket file that no live daemon answers on.
fn clear_leftover(path: &Path) -> Result<(), SocketError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                path: path.to_owned(),
                action: "cannot inspect",
                source,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_owned(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            info!(path = %path.display(), "replacing a leftover socket");
            std::fs::remove_file(path).map_err(|source| SocketError::Io {
                path: path.to_owned(),
                action: "cannot remove the leftover socket",
                source,
            })
        }
        Err(source) => Err(SocketError::Io {
            path: path.to_owned(),
            action: "cannot tell whether a daemon is listening",
            source,
        }),
    }
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
