//! mqlab: learn message queues by doing. RabbitMQ, Redis and Celery on a local cluster, with a
//! Celery-compatible worker and submitter, real checks, and live views.

pub mod celery;
pub mod cli;
pub mod config;
pub mod lessons;
pub mod logging;
pub mod probes;
