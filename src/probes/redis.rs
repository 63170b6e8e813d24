//! Redis check: PING answers PONG.

use std::time::Duration;

use super::{Outcome, Probes, host_port};
use crate::config::Track;

pub async fn ping(p: &Probes) -> Outcome {
    let url = &p.cfg.result_backend;
    let client = match redis::Client::open(url.as_str()) {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("invalid Redis URL: {e}"), "use redis://host:port/db"),
    };
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let (host, port) = host_port(url, 6379);
    let mut conn = match client.get_multiplexed_async_connection_with_config(&cfg).await {
        Ok(c) => c,
        Err(e) => {
            return Outcome::fail(
                format!("cannot connect to Redis at {host}:{port}: {e}"),
                match p.track() {
                    Track::K3s => format!(
                        "press F in the app (or run `mqlab forward`) for mqlab's port-forwards; by hand: kubectl port-forward svc/redis-master -n {} 6379:6379 (and leave it running)",
                        crate::shell::quote(&p.cfg.namespace)
                    ),
                    Track::Local => "start Redis: `mqlab sandbox up` or `redis-server --daemonize yes`".to_string(),
                },
            );
        }
    };
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    match pong {
        Ok(s) if s == "PONG" => {
            let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await.unwrap_or_default();
            let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string();
            if p.track() == Track::K3s {
                match super::identity::redis_identity_or_forward(p, &info) {
                    super::identity::Identity::Other(what) => {
                        return super::identity::not_the_cluster(p, super::identity::Service::Redis, &what);
                    }
                    super::identity::Identity::Cluster(how) => {
                        return Outcome::pass(format!("PING → PONG from Redis {version} at {host}:{port}, {how}"))
                            .fact("redis_version", version);
                    }
                    super::identity::Identity::Unknown => {}
                }
            }
            Outcome::pass(format!("PING → PONG from Redis {version} at {host}:{port}")).fact("redis_version", version)
        }
        Ok(other) => Outcome::fail(format!("PING answered {other:?}"), "is this really Redis?"),
        Err(e) if e.code() == Some("NOAUTH") => {
            Outcome::fail("Redis wants a password (NOAUTH)", "put it in the URL: redis://:PASSWORD@localhost:6379/0")
        }
        Err(e) => Outcome::fail(format!("PING failed: {e}"), "check the Redis logs"),
    }
}
