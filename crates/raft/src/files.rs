//! Small whole-file state: written atomically, checked by CRC when read.
//!
//! A file is `body | crc32c(body): u32`. It is written to `<name>.tmp`,
//! optionally fsynced, renamed over `<name>`, and (when durable) the
//! directory is fsynced so the rename itself survives power loss. A reader
//! therefore sees either the old or the new body, never a mix; a CRC
//! mismatch means the disk lied and is reported, not repaired.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `body` as `dir/name`. With `durable`, the call returns only
/// after both the file and the rename are on stable storage.
pub fn write_atomic(dir: &Path, name: &str, body: &[u8], durable: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(body)?;
    file.write_all(&crc32c::crc32c(body).to_be_bytes())?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads `dir/name`: `Ok(None)` if it does not exist, `Err(InvalidData)`
/// if its CRC does not match.
pub fn read_checked(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = match std::fs::read(dir.join(name)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 4 {
        return Err(corrupt(dir, name));
    }
    let crc_at = bytes.len() - 4;
    let crc = u32::from_be_bytes(bytes[crc_at..].try_into().unwrap());
    bytes.truncate(crc_at);
    if crc32c::crc32c(&bytes) != crc {
        return Err(corrupt(dir, name));
    }
    Ok(Some(bytes))
}

fn corrupt(dir: &Path, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} fails its CRC check", dir.join(name).display()),
    )
}

/// Makes entries created, renamed or removed in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checked(dir.path(), "vote").unwrap(), None);
        write_atomic(dir.path(), "vote", b"hello", true).unwrap();
        write_atomic(dir.path(), "vote", b"world", true).unwrap();
        assert_eq!(
            read_checked(dir.path(), "vote").unwrap().as_deref(),
            Some(&b"world"[..])
        );
        let path = dir.path().join("vote");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_checked(dir.path(), "vote").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
