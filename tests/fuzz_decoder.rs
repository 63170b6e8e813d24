//! A bounded fuzz run of the message decoder: random and mutated headers and bodies must give a
//! clean error or a message, never a panic. Deterministic (seeded) and time-bounded.
//! `MQLAB_FUZZ_SECONDS` sets the duration (default 3 s).

use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::types::FieldTable;
use mqlab::celery::protocol::{TaskMessage, check_envelopes, json_to_amqp};
use mqlab::celery::pyjson;
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_value(r: &mut Rng, depth: u32) -> Value {
    match r.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(r.below(2) == 0),
        2 => json!(r.next() as i64),
        3 => json!((r.next() as f64) / 1e9 - 1e9),
        4 => {
            let s = ["", "tasks.add", "x", "2026-11-27T21:40:46.875699+00:00", "__type__", "\u{0}", "é€𝄞"][r.below(7)];
            json!(s)
        }
        5 => json!(r.below(1000)),
        6 => Value::Array((0..r.below(5)).map(|_| random_value(r, depth + 1)).collect()),
        7 => {
            let keys = ["__type__", "__value__", "task", "args", "kwargs", "id", "hex", "callbacks", "chain", "chord"];
            Value::Object((0..r.below(4)).map(|_| (keys[r.below(keys.len())].to_string(), random_value(r, depth + 1))).collect())
        }
        _ => {
            let ty = ["datetime", "uuid", "bytes", "decimal", "nope"][r.below(5)];
            json!({"__type__": ty, "__value__": random_value(r, depth + 1)})
        }
    }
}

fn mutate(r: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=r.below(4) {
        if bytes.is_empty() {
            bytes.push(r.next() as u8);
            continue;
        }
        let i = r.below(bytes.len());
        match r.below(4) {
            0 => bytes[i] ^= 1 << r.below(8),
            1 => bytes.truncate(i),
            2 => bytes.insert(i, b"[]{}\",:0"[r.below(8)]),
            _ => {
                bytes.remove(i);
            }
        }
    }
}

#[test]
fn decoder_never_panics() {
    let secs: u64 = std::env::var("MQLAB_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut r = Rng(0x9E3779B97F4A7C15);
    let seed = TaskMessage::new("tasks.add", vec![json!(1), json!(2)], Map::new());
    let seed_body = seed.body();
    let seed_headers = seed.headers_json();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut ok, mut err) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..200 {
            // Headers: the real ones with some replaced by random values, or random ones.
            let mut headers = seed_headers.clone();
            for _ in 0..r.below(4) {
                let keys: Vec<String> = headers.keys().cloned().collect();
                let k = keys[r.below(keys.len())].clone();
                if r.below(5) == 0 {
                    headers.remove(&k);
                } else {
                    headers.insert(k, random_value(&mut r, 0));
                }
            }
            let mut t = FieldTable::default();
            for (k, v) in &headers {
                t.insert(k.as_str().into(), json_to_amqp(v));
            }
            let ct = ["application/json", "text/plain", ""][r.below(3)];
            let mut props = BasicProperties::default().with_headers(t);
            if !ct.is_empty() {
                props = props.with_content_type(ct.into());
            }
            // Body: mutated bytes of a real body, or random JSON.
            let body = if r.below(2) == 0 {
                let mut b = seed_body.clone();
                mutate(&mut r, &mut b);
                b
            } else {
                serde_json::to_vec(&random_value(&mut r, 0)).unwrap()
            };
            match std::panic::catch_unwind(|| TaskMessage::decode(&props, &body)) {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
                Err(_) => panic!("decoder panicked on headers {headers:?} body {:?}", String::from_utf8_lossy(&body)),
            }
            let v = random_value(&mut r, 0);
            assert!(std::panic::catch_unwind(|| check_envelopes(&v)).is_ok(), "check_envelopes panicked");
            // Written and read back through the big-int-aware JSON layer: never a panic or an error.
            let text = pyjson::to_vec(&v).unwrap();
            assert!(pyjson::from_slice::<Value>(&text).is_ok(), "pyjson reads back what it wrote: {}", String::from_utf8_lossy(&text));
            runs += 1;
        }
    }
    println!("fuzzed the decoder {runs} times in {secs} s: {ok} decoded, {err} rejected with a reason, 0 panics");
    assert!(runs > 1000);
}
