//! The broker-facing tests again, against RabbitMQ 4: Debian 13's rabbitmq-server (4.0) with
//! RabbitMQ 4.3's defaults (transient non-exclusive queues and global QoS denied), which `.ci/run`
//! starts in a chroot on 127.0.0.1:5673 (management 15673). Each file below is the same file its
//! own test binary runs against the machine's RabbitMQ; `common::on_rabbitmq4` points its helpers
//! (broker, management API, rabbitmqctl) at RabbitMQ 4 when it is compiled in here.

mod common;

#[path = "interop.rs"]
mod interop;

#[path = "engine.rs"]
mod engine;

#[path = "parity.rs"]
mod parity;

#[path = "ecosystem.rs"]
mod ecosystem;

#[path = "checks.rs"]
mod checks;

#[path = "cli.rs"]
mod cli;

#[path = "evidence.rs"]
mod evidence;

#[path = "live_figures.rs"]
mod live_figures;

#[path = "forward.rs"]
mod forward;

mod denied_features {
    //! The chroot's broker really denies what RabbitMQ 4.3 denies, so the tests above prove
    //! something: a transient non-exclusive queue is refused there.
    use crate::common::{self, Need};

    #[tokio::test]
    async fn transient_non_exclusive_queues_are_refused() {
        if !common::have(&[Need::Rabbitmq]) {
            return;
        }
        assert!(common::on_rabbitmq4());
        let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = common::queue("transient");
        let opts = lapin::options::QueueDeclareOptions { durable: false, exclusive: false, auto_delete: true, ..Default::default() };
        let err = ch.queue_declare(q.as_str().into(), opts, Default::default()).await.expect_err("RabbitMQ 4.3's default refuses it");
        assert!(err.to_string().contains("transient_nonexcl_queues"), "{err}");
        // INTERNAL_ERROR (541) is a connection error: the refusal closed the connection.
        let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let ok = lapin::options::QueueDeclareOptions { exclusive: true, ..opts };
        ch.queue_declare(q.as_str().into(), ok, Default::default()).await.expect("an exclusive one is allowed");
        let _ = conn.close(200, "bye".into()).await;
    }
}
