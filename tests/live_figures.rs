//! The lab's live figures against the broker's own: a burst drains through a worker while the
//! app's reading (ready over AMQP, unacked from the worker's own count, fed through the app's
//! update function as the runtime feeds it) is compared with `rabbitmqctl list_queues` every
//! 0.5 s. rabbitmqctl takes a moment to answer, so the app is read just before and just after
//! it: a sample matches when the broker's figures lie between those two readings.

mod common;

use common::Need;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use mqlab::celery::client::Client;
use mqlab::celery::protocol::TaskMessage;
use mqlab::celery::worker::{self, WorkerEvent, WorkerOptions};
use mqlab::config::{Config, Overrides, Track};
use mqlab::tui::App;
use mqlab::tui::update::Event;
use serde_json::json;

/// The app's reading, as the runtime makes it: a queue declare for ready and consumers, the
/// worker's counter for unacked, fed through the update function.
async fn reading(app: &mut App, ch: &lapin::Channel, q: &str, stats: &mqlab::celery::worker::WorkerStats) -> (u64, u64) {
    let d = ch
        .queue_declare(q.into(), lapin::options::QueueDeclareOptions { passive: true, ..Default::default() }, Default::default())
        .await
        .unwrap();
    app.handle(Event::WorkerStats { processed: 0, failed: 0, active: 0, unacked: stats.unacked.load(Ordering::Relaxed) });
    app.handle(Event::Depth { ready: d.message_count() as u64, consumers: d.consumer_count() as u64, at: Utc::now() });
    (app.live.unwrap().ready, app.unacked_now().0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_labs_figures_match_rabbitmqctl_during_a_drain() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Rabbitmqctl]) {
        return;
    }
    let q = common::queue("livefig");
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides { track: Some(Track::Local), ..Default::default() }, &env).unwrap();
    let mut app = App::new(cfg, mqlab::lessons::Course::embedded().unwrap(), mqlab::lessons::progress::Progress::new());

    let client = Client::connect(&common::broker(), None, &q, 3600).await.unwrap();
    let msgs: Vec<TaskMessage> = (0..40).map(|_| TaskMessage::new("tasks.hello", vec![json!("World")], Default::default())).collect();
    client.publish(&msgs).await.unwrap();
    let mut opts = WorkerOptions::new(common::broker(), Some(common::redis()));
    opts.queue = q.clone();
    opts.concurrency = 2;
    opts.hostname = format!("live-{}@test", &q[q.len() - 8..]);
    opts.settings.hello_delay = Duration::from_millis(400);
    let (wtx, mut wrx) = tokio::sync::mpsc::unbounded_channel();
    let mut handle = worker::spawn(opts, Some(wtx));
    loop {
        match wrx.recv().await.expect("worker events") {
            WorkerEvent::Ready { prefetch } => {
                app.handle(Event::Worker(WorkerEvent::Ready { prefetch }));
                break;
            }
            WorkerEvent::Fatal { error } => panic!("{error}"),
            _ => {}
        }
    }
    let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut samples = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = reading(&mut app, &ch, &q, &handle.stats).await;
        let broker = tokio::task::spawn_blocking({
            let q = q.clone();
            move || common::queue_counts(&q)
        })
        .await
        .unwrap()
        .expect("rabbitmqctl lists the queue");
        let after = reading(&mut app, &ch, &q, &handle.stats).await;
        let within = |v: u64, a: u64, b: u64| a.min(b) <= v && v <= a.max(b);
        let matched = within(broker.0, before.0, after.0) && within(broker.1, before.1, after.1);
        samples.push((before, broker, after, matched));
        if broker == (0, 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    handle.stop(mqlab::celery::worker::StopMode::Warm);
    let _ = tokio::time::timeout(Duration::from_secs(10), handle.wait()).await;
    println!("lab (before → after) against rabbitmqctl, ready/unacked:");
    for (b, r, a, m) in &samples {
        println!(
            "  {:>2}/{:<2} → {:>2}/{:<2}   broker {:>2}/{:<2}   {}",
            b.0,
            b.1,
            a.0,
            a.1,
            r.0,
            r.1,
            if *m { "match" } else { "MISMATCH" }
        );
    }
    let matched = samples.iter().filter(|s| s.3).count();
    println!("{matched} of {} samples match", samples.len());
    assert!(samples.len() >= 5, "the drain was sampled");
    assert!(matched * 10 >= samples.len() * 9, "at least 90% of samples match: {matched}/{}", samples.len());
    // Never an impossible combination: unacked with nobody consuming.
    for (b, _, a, _) in &samples {
        assert!(b.1 <= 8 && a.1 <= 8, "unacked never above the prefetch (2 × 4)");
    }
    let _ = conn.close(200, "bye".into()).await;
    common::cleanup(&q).await;
}
