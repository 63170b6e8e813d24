//! mqlab: learn message queues by doing. RabbitMQ, Redis and Celery on a local cluster, with a
//! Celery-compatible worker and submitter, real checks, and live views.

pub mod celery;
pub mod cli;
pub mod config;
pub mod files;
pub mod forward;
pub mod lessons;
pub mod logging;
pub mod pods;
pub mod probes;
pub mod process;
pub mod redact;
pub mod sandbox;
pub mod shell;
pub mod tls;
pub mod tui;

/// When the process started (set first thing in `main`), for start-up measurements.
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
