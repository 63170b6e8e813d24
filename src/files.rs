//! Files that hold notes, logs or credentials: private to their owner, written under names of
//! their own. A leaf: it imports nothing from the app.

use std::path::{Path, PathBuf};

/// Creates `path` (which must not exist) readable and writable by its owner only.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
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
