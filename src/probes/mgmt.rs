//! The one client of RabbitMQ's management HTTP API: JSON GETs with the configured login and
//! short timeouts, for the checks and the app's live panel alike.

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;

/// Why a management call gave no JSON.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    /// The API answered with this HTTP status (401: the login was refused; 404: no such object).
    #[error("HTTP {0}")]
    Status(u16),
    /// Nothing answered, or the connection failed.
    #[error("{0}")]
    Unreachable(String),
    /// An answer that is not the JSON expected.
    #[error("not the management API's JSON: {0}")]
    BadAnswer(String),
}

/// A management API client for one configuration.
#[derive(Clone)]
pub struct Mgmt {
    http: reqwest::Client,
    /// `http://host:15672`, without credentials.
    pub base: String,
    pub user: String,
    pass: String,
}

/// One path segment, percent-encoded (the default vhost `/` is `%2F`).
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

impl Mgmt {
    /// A client whose calls give up after `timeout` (connecting: 2 s at most).
    pub fn new(cfg: &Config, timeout: Duration) -> Mgmt {
        let (base, user, pass) = cfg.management_login();
        crate::tls::ensure_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2).min(timeout))
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Mgmt { http, base, user, pass }
    }

    /// `GET {base}{path}` (path such as `/api/overview`) as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, MgmtError> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.pass))
            .send()
            .await
            .map_err(|e| MgmtError::Unreachable(crate::redact::error_chain(&e)))?;
        let status = r.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(MgmtError::Status(status));
        }
        r.json::<Value>().await.map_err(|e| MgmtError::BadAnswer(crate::redact::error_chain(&e)))
    }
}
