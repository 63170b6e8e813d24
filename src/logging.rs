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

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("MQLAB_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Headless commands: Celery-style lines on stderr.
pub fn init_stderr(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(&format!("warn,mqlab={level}")))
        .event_format(CeleryFormat)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The terminal UI: append to `<data dir>/mqlab.log`.
pub fn init_file(data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("mqlab.log");
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn,mqlab=info"))
        .event_format(CeleryFormat)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(path)
}
