//! Reading the small files an operator points the ingester at (the Kafka password, a CA bundle,
//! cgroup limits) without trusting the path: only a regular file is read, it is opened without
//! blocking, and never more than a stated number of bytes is kept. A FIFO would block `open` until
//! a writer comes, `/dev/zero` would be read until memory runs out, and a directory is a mistake;
//! each is refused with a message that says which, and never with what the file holds.

use std::fs::{FileType, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file was not read. The `Display` text is a predicate ("is a FIFO, not a regular
/// file") meant to follow the file's name in a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmallFileError {
    #[error("cannot be read: {0}")]
    Io(std::io::ErrorKind),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

fn describe(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn check(meta: &Metadata, limit: u64) -> Result<(), SmallFileError> {
    if !meta.is_file() {
        return Err(SmallFileError::NotRegular(describe(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(SmallFileError::TooLarge { limit });
    }
    Ok(())
}

/// Reads all of `path` (following symlinks, as the Key Vault CSI mount needs) when it is a regular
/// file of at most `limit` bytes. Memory used: at most `limit + 1` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, SmallFileError> {
    let io = |e: std::io::Error| SmallFileError::Io(e.kind());
    // The path's metadata first: a FIFO or a device is refused before anything opens it.
    let meta = std::fs::metadata(path).map_err(io)?;
    check(&meta, limit)?;
    // O_NONBLOCK, so that a path swapped for a FIFO since the check does not block `open`; then
    // the opened file's own metadata is what counts (regular files ignore O_NONBLOCK when read).
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    check(&file.metadata().map_err(io)?, limit)?;
    // Files that report size 0 (cgroupfs, procfs) or grow while read are still cut at the limit.
    let mut buf = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(SmallFileError::TooLarge { limit });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mf-small-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let p = temp("ok");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read(&p, 3).unwrap(), b"abc");
        assert_eq!(read(&p, 2), Err(SmallFileError::TooLarge { limit: 2 }));
    }

    #[test]
    fn devices_fifos_directories_and_missing_files_are_refused_without_blocking() {
        assert_eq!(read(Path::new("/dev/zero"), 64), Err(SmallFileError::NotRegular("a character device")));
        assert_eq!(read(Path::new("/"), 64), Err(SmallFileError::NotRegular("a directory")));
        assert_eq!(read(Path::new("/nonexistent/x"), 64), Err(SmallFileError::Io(std::io::ErrorKind::NotFound)));
        let fifo = temp("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // With no writer, a blocking open of a FIFO would never return.
        assert_eq!(read(&fifo, 64), Err(SmallFileError::NotRegular("a FIFO")));
    }

    #[test]
    fn files_reporting_size_zero_are_still_cut_at_the_limit() {
        // procfs reports size 0 for a file far longer than 8 bytes.
        assert_eq!(read(Path::new("/proc/self/status"), 8), Err(SmallFileError::TooLarge { limit: 8 }));
    }
}
