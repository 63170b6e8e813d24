//! Log output: Celery's line layout on stderr for the headless commands, a file in the data dir
//! for the terminal UI (nothing may be written over the screen).

use std::fmt;
use std::path::Path;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `[2026-11-27 18:50:00,123: INFO/MainProcess] message`
struct CeleryFormat;

impl<S, N> FormatEvent<S, N> for CeleryFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let now = chrono::Utc::now();
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        write!(w, "[{},{:03}: {level}/MainProcess] ", now.format("%Y-%m-%d %H:%M:%S"), now.timestamp_subsec_millis())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// lapin logs every channel the broker closes as an ERROR of its own, even the 406 mqlab expects
/// when it finds a queue of another kind (a quorum queue) and then uses it. Every such close is
/// also returned to mqlab as an error, which reports it at the level it deserves (the refusal
/// that stops a worker as an error, the expected one as information), so lapin's copy is left out.
const QUIET: &str = "lapin::channel=off";

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("MQLAB_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{default},{QUIET}")))
}

/// Headless commands: Celery-style lines on stderr (colour only on a terminal).
pub fn init_stderr(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(&format!("warn,mqlab={level}")))
        .event_format(CeleryFormat)
        .with_writer(LineLimiter::stderr)
        .try_init();
}

/// The terminal UI: append to `<data dir>/mqlab.log` (0600), rotated at `LOG_CAP` bytes, the
/// same line repeated within `REPEAT_WINDOW` written once.
pub fn init_file(data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    crate::files::private_dir(data_dir)?;
    let path = data_dir.join("mqlab.log");
    let log = LogFile::open(&path)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn,mqlab=info"))
        .event_format(CeleryFormat)
        .with_writer(std::sync::Mutex::new(log))
        .try_init();
    Ok(path)
}

/// The log file is rotated (to `mqlab.log.1`) when it reaches this size.
pub const LOG_CAP: u64 = 5 * 1024 * 1024;
/// A line identical to one written less than this long ago is counted, not written.
pub const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);

/// Causes remembered at most. A worker at `-l info` writes lines that never repeat (each names
/// its task), so without a bound every line would be remembered for the window.
pub const REPEATS_KEPT: usize = 1000;

/// Drops a line written less than `REPEAT_WINDOW` ago, and says how many were dropped when the
/// cause shows again later.
#[derive(Default)]
pub struct Repeats {
    seen: std::collections::HashMap<String, (std::time::Instant, u32)>,
}

impl Repeats {
    /// Room for a new cause: only those seen again within the window are kept (a cause written
    /// once has nothing to report, and at worst its next repeat is written once more). Then
    /// the map holds the few causes that repeat, so this runs about once per `REPEATS_KEPT` new
    /// lines, not on every line; should a thousand causes all repeat, they are forgotten.
    fn forget(&mut self, now: std::time::Instant) {
        self.seen.retain(|_, (t, n)| *n > 0 && now.duration_since(*t) < REPEAT_WINDOW);
        if self.seen.len() >= REPEATS_KEPT {
            self.seen.clear();
        }
    }

    /// How many causes are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// The line to write (None: a repeat to drop). Escape sequences (colour from a library's
    /// message) are removed: logs are read in files and pipes.
    pub fn filter(&mut self, line: &str, now: std::time::Instant) -> Option<String> {
        let clean = strip_escapes(line);
        let line = clean.as_str();
        // The cause, without the time stamp: `[2026-…,123: ERROR/MainProcess] text`.
        let cause = line.split_once("] ").map(|(_, rest)| rest).unwrap_or(line).trim_end().to_string();
        if self.seen.len() >= REPEATS_KEPT && !self.seen.contains_key(&cause) {
            self.forget(now);
        }
        match self.seen.get_mut(&cause) {
            Some((t, n)) if now.duration_since(*t) < REPEAT_WINDOW => {
                *n += 1;
                None
            }
            Some((t, n)) => {
                let dropped = std::mem::take(n);
                *t = now;
                Some(if dropped > 0 {
                    format!("{} (the same line was dropped {dropped} time(s) since)\n", line.trim_end())
                } else {
                    line.to_string()
                })
            }
            None => {
                self.seen.insert(cause, (now, 0));
                Some(line.to_string())
            }
        }
    }
}

/// Text without ANSI escape sequences (`ESC [ … letter`, and lone ESCs).
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// stderr with repeated lines dropped.
pub struct LineLimiter;

static STDERR_REPEATS: std::sync::Mutex<Option<Repeats>> = std::sync::Mutex::new(None);

impl LineLimiter {
    fn stderr() -> LineLimiter {
        LineLimiter
    }
}

impl std::io::Write for LineLimiter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        let out = {
            let mut guard = STDERR_REPEATS.lock().unwrap_or_else(|e| e.into_inner());
            guard.get_or_insert_with(Repeats::default).filter(&line, std::time::Instant::now())
        };
        if let Some(l) = out {
            std::io::stderr().write_all(l.as_bytes())?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The UI's log file: private, size-capped with one rotation, repeated lines dropped.
pub struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    repeats: Repeats,
}

impl LogFile {
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_path_buf(), file, size, repeats: Repeats::default() })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let old = self.path.with_extension("log.1");
        std::fs::rename(&self.path, &old)?;
        let fresh = LogFile::open(&self.path)?;
        self.file = fresh.file;
        self.size = 0;
        Ok(())
    }
}

impl std::io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf).to_string();
        if let Some(l) = self.repeats.filter(&line, std::time::Instant::now()) {
            if self.size + l.len() as u64 > LOG_CAP {
                self.rotate()?;
            }
            self.file.write_all(l.as_bytes())?;
            self.size += l.len() as u64;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    #[test]
    fn repeats_are_dropped_and_counted() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let line = |ts: &str| format!("[2026-11-28 06:00:{ts},000: ERROR/MainProcess] login refused\n");
        assert!(r.filter(&line("01"), t0).is_some());
        for i in 0..56 {
            assert!(r.filter(&line("02"), t0 + Duration::from_millis(i * 280)).is_none());
        }
        assert!(r.filter("[x] another cause\n", t0).is_some());
        let later = r.filter(&line("40"), t0 + REPEAT_WINDOW + Duration::from_secs(1)).unwrap();
        assert!(later.contains("dropped 56 time(s)"), "{later}");
        assert_eq!(strip_escapes("\u{1b}[1;31mred\u{1b}[0m plain"), "red plain");
    }

    #[test]
    fn lines_that_never_repeat_are_all_written_and_not_all_remembered() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let storm = "[2026-11-28 06:00:01,000: ERROR/MainProcess] login refused\n";
        assert!(r.filter(storm, t0).is_some());
        assert!(r.filter(storm, t0).is_none());
        // A worker at -l info: two lines per task, each naming its task.
        let mut written = 0;
        for i in 0..20_000 {
            let line = format!("[2026-11-28 06:00:02,000: INFO/MainProcess] Task tasks.add[{i:08}] received\n");
            written += usize::from(r.filter(&line, t0 + Duration::from_millis(1)).is_some());
            assert!(r.remembered() <= REPEATS_KEPT, "{} causes remembered after {i} lines", r.remembered());
        }
        assert_eq!(written, 20_000, "a line that never repeats is always written");
        // The storm, seen again within the window, is still held back, and counted.
        assert!(r.filter(storm, t0 + Duration::from_secs(2)).is_none());
        let later = r.filter(storm, t0 + REPEAT_WINDOW + Duration::from_secs(3)).unwrap();
        assert!(later.contains("dropped 2 time(s)"), "{later}");
    }

    #[test]
    fn the_log_file_is_private_and_rotates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mqlab.log");
        let mut log = LogFile::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let mut written = 0u64;
        let mut i = 0;
        while written < LOG_CAP + 1000 {
            let l = format!("[t] line {i} {}\n", "x".repeat(200));
            log.write_all(l.as_bytes()).unwrap();
            written += l.len() as u64;
            i += 1;
        }
        assert!(dir.path().join("mqlab.log.1").exists());
        assert!(std::fs::metadata(&path).unwrap().len() < LOG_CAP);
    }
}
