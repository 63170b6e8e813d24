//! A Celery-compatible engine: wire protocol, broker, Redis result backend, worker pool, client.

pub mod backend;
pub mod broker;
pub mod client;
pub mod events;
pub mod pidbox;
pub mod protocol;
pub mod pydecimal;
pub mod pyjson;
pub mod pyrepr;
pub mod tasks;
pub mod worker;

pub use backend::{ResultBackend, ResultMeta};
pub use client::Client;
pub use protocol::{TaskMessage, TaskState};
pub use worker::{WorkerEvent, WorkerHandle, WorkerOptions};
