//! The learner's Python project (Step 5): `celery_app.py`, `submit_task.py`, `requirements.txt`
//! and a `.gitignore`, from `assets/python/`, filled in with the broker and result backend of the
//! current configuration. An existing file is never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;

pub const FILES: &[(&str, &str)] = &[
    ("celery_app.py", include_str!("../../assets/python/celery_app.py")),
    ("submit_task.py", include_str!("../../assets/python/submit_task.py")),
    ("requirements.txt", include_str!("../../assets/python/requirements.txt")),
    (".gitignore", include_str!("../../assets/python/gitignore")),
];

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written(PathBuf),
    /// A file of that name was there already and was left as it was.
    Kept(PathBuf),
}

/// Writes the project into `dir` (created if needed). Files are written with the real
/// credentials (they are the learner's own files, not a screen or a log).
pub fn write(dir: &Path, cfg: &Config) -> anyhow::Result<Vec<Outcome>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = vec![];
    for (name, text) in FILES {
        let path = dir.join(name);
        let body = super::template::fill_revealed(text, cfg);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(body.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
                out.push(Outcome::Written(path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => out.push(Outcome::Kept(path)),
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
        }
    }
    Ok(out)
}
