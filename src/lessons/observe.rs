//! Experiments seen on the broker, whoever did them: the queue's readings (messages waiting and
//! consumers, every 0.5 s) tell a burst (the queue rose and drained while a consumer worked) and
//! a recovery (every consumer went away while messages waited, one came back and the queue
//! drained) whether the worker was the lab's, `mqlab worker` in a terminal or the learner's own
//! Python worker, and whoever published (`mqlab submit --count`, the learner's Python loops).
//! Pure: readings in, observations out.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::progress::ExperimentKind;

/// What the broker showed.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// The queue rose to `peak` messages and drained, in `seconds`, with a consumer throughout;
    /// `ready_peak` of them at most were Ready (waiting, not delivered).
    Burst { peak: u64, ready_peak: u64, seconds: f64, from: DateTime<Utc> },
    /// Every consumer left (`returned` messages came back unacknowledged as they left); while none
    /// was there the queue held at most `waited`; a consumer came back after `down_seconds` and
    /// the queue drained `drain_seconds` later.
    Recovery { waited: u64, returned: u64, down_seconds: f64, drain_seconds: f64, from: DateTime<Utc> },
}

#[derive(Clone, Copy, Debug)]
struct Reading {
    depth: u64,
    consumers: u64,
    at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug)]
struct Rise {
    from: DateTime<Utc>,
    peak: u64,
    ready_peak: u64,
}

#[derive(Clone, Copy, Debug)]
struct Outage {
    since: DateTime<Utc>,
    returned: u64,
    waited: u64,
    back: Option<DateTime<Utc>>,
}

/// Follows the queue's readings.
#[derive(Clone, Debug, Default)]
pub struct BrokerWatch {
    last: Option<Reading>,
    rise: Option<Rise>,
    outage: Option<Outage>,
}

/// The smallest rise taken for a burst (the lab's own bursts count from 2 as well).
const BURST_MIN: u64 = 2;

impl BrokerWatch {
    /// One reading: messages Ready and unacknowledged (where known; 0 otherwise), consumers,
    /// when. The rules go by the queue's depth (the two together); a burst also keeps Ready's own
    /// peak. `lab` says the lab's own worker or experiments are at work: those record
    /// themselves, so the broker's view of them is not recorded twice.
    pub fn reading(&mut self, ready: u64, unacked: u64, consumers: u64, at: DateTime<Utc>, lab: bool) -> Option<Observed> {
        let depth = ready + unacked;
        let prev = self.last.replace(Reading { depth, consumers, at });
        if lab {
            self.rise = None;
            self.outage = None;
            return None;
        }
        let prev = prev?;
        // Every consumer gone: an outage begins; what came back at once was unacknowledged.
        if prev.consumers > 0 && consumers == 0 && self.outage.is_none() {
            self.rise = None;
            self.outage = Some(Outage { since: at, returned: depth.saturating_sub(prev.depth), waited: depth, back: None });
            return None;
        }
        if let Some(o) = &mut self.outage {
            if consumers == 0 {
                o.waited = o.waited.max(depth);
                o.back = None;
                return None;
            }
            if o.waited == 0 {
                // Nothing waited while no consumer was there: no recovery. What this reading
                // shows (a burst sent the moment a worker came back) is an ordinary reading.
                self.outage = None;
            } else {
                // Only what waited with no consumer counts; the rest is the drain.
                let back = *o.back.get_or_insert(at);
                if depth > 0 {
                    return None;
                }
                let o = self.outage.take().expect("an outage");
                return Some(Observed::Recovery {
                    waited: o.waited,
                    returned: o.returned,
                    down_seconds: secs(o.since, back),
                    drain_seconds: secs(back, at),
                    from: o.since,
                });
            }
        }
        if consumers == 0 {
            self.rise = None;
            return None;
        }
        match &mut self.rise {
            None if depth >= BURST_MIN => {
                self.rise = Some(Rise { from: prev.at, peak: depth, ready_peak: ready });
                None
            }
            Some(r) if depth > 0 => {
                r.peak = r.peak.max(depth);
                r.ready_peak = r.ready_peak.max(ready);
                None
            }
            Some(_) => {
                let r = self.rise.take().expect("a rise");
                Some(Observed::Burst { peak: r.peak, ready_peak: r.ready_peak, seconds: secs(r.from, at), from: r.from })
            }
            None => None,
        }
    }
}

impl Observed {
    /// When it began.
    pub fn from(&self) -> DateTime<Utc> {
        match self {
            Observed::Burst { from, .. } | Observed::Recovery { from, .. } => *from,
        }
    }

    /// The experiment it is, in the learner's words, with its figures (marked "observed":
    /// "broker"). `down_at`/`up_at` of a recovery are added by whoever holds its time series.
    pub fn experiment(&self) -> (ExperimentKind, String, Value) {
        match *self {
            Observed::Burst { peak, ready_peak, seconds, .. } => (
                ExperimentKind::Concurrency,
                format!(
                    "Seen on the broker: the queue rose to {peak} and drained in {seconds:.1} s (tasks another program published, consumed by a worker outside the lab)"
                ),
                json!({"observed": "broker", "peak_depth": peak, "ready_peak": ready_peak, "drained": 1, "seconds": seconds}),
            ),
            Observed::Recovery { waited, returned, down_seconds, drain_seconds, .. } => {
                let returned_text = if returned > 0 { format!(" ({returned} came back unacknowledged as it left)") } else { String::new() };
                (
                    ExperimentKind::Recovery,
                    format!(
                        "Seen on the broker: the queue's worker went away{returned_text}; {waited} message(s) waited at most; a worker came back after {down_seconds:.1} s and the queue drained {drain_seconds:.1} s later, nothing lost in the queue"
                    ),
                    json!({"observed": "broker", "waited": waited, "returned_at_stop": returned, "peak_depth": waited,
                        "down_seconds": down_seconds, "seconds": drain_seconds, "drained": 1}),
                )
            }
        }
    }

    /// One line for a status bar.
    pub fn status(&self) -> String {
        match *self {
            Observed::Burst { peak, seconds, .. } => format!("seen on the broker: a burst rose to {peak} and drained in {seconds:.1} s"),
            Observed::Recovery { waited, drain_seconds, .. } => {
                format!("seen on the broker: a recovery — {waited} waited, drained {drain_seconds:.1} s after the worker came back")
            }
        }
    }
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds().max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    fn feed(w: &mut BrokerWatch, readings: &[(u64, u64)], lab: bool) -> Vec<Observed> {
        readings.iter().enumerate().filter_map(|(i, (d, c))| w.reading(*d, 0, *c, at(i as i64 * 500), lab)).collect()
    }

    /// The app knows unacknowledged messages too (the management API's sample): the depth rules
    /// count them, Ready's peak does not.
    #[test]
    fn a_bursts_ready_peak_is_ready_alone() {
        let mut w = BrokerWatch::default();
        let seen: Vec<Observed> = [(0, 0), (10, 0), (6, 8), (2, 8), (0, 8), (0, 0)]
            .iter()
            .enumerate()
            .filter_map(|(i, (r, u))| w.reading(*r, *u, 1, at(i as i64 * 500), false))
            .collect();
        assert_eq!(seen, vec![Observed::Burst { peak: 14, ready_peak: 10, seconds: 2.5, from: at(0) }]);
        assert_eq!(seen[0].experiment().2["ready_peak"], 10);
    }

    #[test]
    fn a_python_worker_killed_and_restarted_is_a_recovery() {
        let mut w = BrokerWatch::default();
        // 1 consumer busy with 20 tasks (8 unacked), killed: 8 come back; 5 more published while
        // down; it restarts and drains.
        let seen = feed(&mut w, &[(20, 1), (16, 1), (24, 0), (29, 0), (29, 0), (25, 1), (10, 1), (0, 1)], false);
        assert_eq!(seen, vec![Observed::Recovery { waited: 29, returned: 8, down_seconds: 1.5, drain_seconds: 1.0, from: at(1000) }]);
    }

    #[test]
    fn a_queue_that_rose_and_drained_under_a_consumer_is_a_burst() {
        let mut w = BrokerWatch::default();
        let seen = feed(&mut w, &[(0, 1), (12, 1), (20, 1), (8, 1), (0, 1), (0, 1)], false);
        assert_eq!(seen, vec![Observed::Burst { peak: 20, ready_peak: 20, seconds: 2.0, from: at(0) }]);
        // A single message that comes and goes is not a burst.
        let mut w = BrokerWatch::default();
        assert!(feed(&mut w, &[(0, 1), (1, 1), (0, 1)], false).is_empty());
    }

    #[test]
    fn the_labs_own_experiments_are_not_seen_twice_and_an_empty_outage_is_nothing() {
        let mut w = BrokerWatch::default();
        assert!(feed(&mut w, &[(20, 1), (24, 0), (24, 1), (0, 1)], true).is_empty());
        let mut w = BrokerWatch::default();
        assert!(feed(&mut w, &[(0, 1), (0, 0), (0, 0), (0, 1), (0, 1)], false).is_empty());
    }

    #[test]
    fn a_worker_restarted_and_given_a_burst_between_two_readings_is_a_burst_not_a_recovery() {
        let mut w = BrokerWatch::default();
        // Stopped while idle; back with 10 already waiting at the next reading (the burst was
        // sent the moment it was ready): nothing waited while no consumer was there.
        let seen = feed(&mut w, &[(0, 1), (0, 0), (0, 0), (10, 1), (6, 1), (0, 1)], false);
        assert_eq!(seen, vec![Observed::Burst { peak: 10, ready_peak: 10, seconds: 1.5, from: at(1000) }]);
    }

    #[test]
    fn a_burst_cut_by_the_consumer_leaving_becomes_the_recovery() {
        let mut w = BrokerWatch::default();
        let seen = feed(&mut w, &[(0, 1), (20, 1), (16, 1), (20, 0), (20, 1), (0, 1)], false);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(seen[0], Observed::Recovery { waited: 20, returned: 4, .. }), "{seen:?}");
    }
}
