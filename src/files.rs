//! Files that hold notes, logs or credentials: private to their owner, written under names of
//! their own. A leaf: it imports nothing from the app.

use std::path::{Path, PathBuf};

/// Creates `path` (which must not exist) readable and writable by its owner only.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Starts `path` afresh, empty and private to its owner: a file there before (a log of an earlier
/// run, perhaps created open to others) is removed first.
pub fn private_file_afresh(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    private_file(path)
}

/// Creates `dir` (and its parents) for its owner only; an existing one open to others is closed.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A name beside `path` that no file has yet: `<path>.<tag>-<time>-<pid>-<n>`.
pub fn unique_beside(path: &Path, tag: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%.6f");
    let pid = std::process::id();
    let base = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    (0u32..).map(|n| path.with_file_name(format!("{base}.{tag}-{stamp}-{pid}-{n}"))).find(|p| !p.exists()).expect("some name is free")
}

/// Reads a text file of at most `max` bytes: a larger one (or a device that never ends, such as
/// `/dev/zero`) is an error, not a read until memory runs out.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_capped_bytes(path, max)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not UTF-8 text: {e}", path.display())))
}

/// Reads a file of at most `max` bytes, as `read_capped` does, without asking for text.
pub fn read_capped_bytes(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {} KiB: not a file mqlab wrote", path.display(), max / 1024),
        ));
    }
    Ok(bytes)
}

/// The last `max` bytes of a file at most (a log's tail), as text.
pub fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Replaces `path` with `bytes` at once (a temporary file of its own beside it, then a rename),
/// private to its owner: a reader sees the old file or the new one, never half of either.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = unique_beside(path, "tmp");
    let mut f = private_file(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
