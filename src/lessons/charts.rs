//! The learner's own charts for LEARNINGS.md, drawn as SVG from what was recorded: queue depth
//! through a recovery, throughput by concurrency, early against late acks. No experiment, no
//! chart.

use std::fmt::Write;

use super::progress::{Experiment, ExperimentKind, Progress};

const W: f64 = 640.0;
const H: f64 = 300.0;
const L: f64 = 56.0;
const R: f64 = 16.0;
const T: f64 = 44.0;
const B: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The most characters of a title line that fit the frame's width at the title's size.
const TITLE_CHARS: usize = 72;

/// A title cut into lines that fit the frame, at word boundaries (two at most; the rest ends
/// with "…" and stays whole in the SVG's own <title>).
fn title_lines(title: &str) -> Vec<String> {
    let mut lines: Vec<String> = vec![String::new()];
    for word in title.split_whitespace() {
        let cur = lines.last_mut().expect("one line");
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > TITLE_CHARS {
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    if lines.len() > 2 {
        lines.truncate(2);
        let last = &mut lines[1];
        while last.chars().count() > TITLE_CHARS - 1 {
            last.pop();
        }
        last.push('…');
    }
    lines
}

fn frame(title: &str, out: &mut String) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>{t}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n",
        t = esc(title)
    );
    for (i, line) in title_lines(title).iter().enumerate() {
        let _ = writeln!(out, "<text x=\"12\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>", 17 + 15 * i, esc(line));
    }
}

fn axes(out: &mut String, x_label: &str, y_max: f64, y_label: &str) {
    let (x0, y0, x1, y1) = (L, H - B, W - R, T);
    let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#444\"/>");
    let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#444\"/>");
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", (x0 + x1) / 2.0, H - 8.0, esc(x_label));
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text>", x0 - 6.0, y1 + 4.0, y_max);
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>", x0 - 6.0, y0 + 4.0);
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>",
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
}

fn nice_max(v: f64) -> f64 {
    if v <= 4.0 {
        4.0
    } else {
        let p = 10f64.powf(v.log10().floor());
        (v / p).ceil() * p
    }
}

/// Queue depth (ready, unacked) over time through a recorded recovery.
pub fn recovery_chart(e: &Experiment) -> Option<String> {
    if e.kind != ExperimentKind::Recovery || e.series.len() < 2 {
        return None;
    }
    let t_max = e.series.iter().map(|p| p[0]).fold(1.0, f64::max);
    let y_max = nice_max(e.series.iter().map(|p| p[1].max(p[2])).fold(0.0, f64::max));
    let x = |t: f64| L + (W - L - R) * t / t_max;
    let y = |v: f64| (H - B) - (H - B - T) * v / y_max;
    let num = |k: &str| e.figures.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let title = if super::progress::observed(e) {
        format!(
            "Recovery seen on the broker: {:.0} message(s) waited, the queue drained {:.1} s after a worker came back",
            num("waited"),
            num("seconds")
        )
    } else {
        format!(
            "Recovery: peak depth {:.0}, {:.0} of {:.0} tasks done {:.1} s after the restart",
            num("peak_depth"),
            num("succeeded"),
            num("tasks"),
            num("seconds")
        )
    };
    let mut out = String::new();
    frame(&title, &mut out);
    axes(&mut out, &format!("seconds ({:.0} s recorded)", t_max), y_max, "messages");
    // The worker's downtime, when recorded.
    if let (Some(down), Some(up)) = (e.figures.get("down_at").and_then(|v| v.as_f64()), e.figures.get("up_at").and_then(|v| v.as_f64())) {
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{T}\" width=\"{:.1}\" height=\"{}\" fill=\"#fde2e2\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#b00\">worker down</text>",
            x(down),
            (x(up) - x(down)).max(1.0),
            H - B - T,
            x(down) + 4.0,
            T + 14.0
        );
    }
    for (i, (name, color)) in [("ready", "#c98f00"), ("unacked", "#b03fa0")].iter().enumerate() {
        let pts: Vec<String> = e.series.iter().map(|p| format!("{:.1},{:.1}", x(p[0]), y(p[i + 1]))).collect();
        let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", pts.join(" "));
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>", W - R - 70.0, T + 14.0 + i as f64 * 16.0);
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// Throughput of the recorded bursts, by concurrency (the best run at each), like with like: one
/// task and one burst size, the pair recorded at the most concurrencies (the latest on a tie).
pub fn throughput_chart(p: &Progress) -> Option<String> {
    let key = |e: &Experiment| {
        (
            e.figures.get("task").and_then(|v| v.as_str()).unwrap_or("").to_string(),
            e.figures.get("count").and_then(|v| v.as_u64()).unwrap_or(0),
        )
    };
    let bursts: Vec<&Experiment> = p.experiments.iter().filter(|e| e.kind == ExperimentKind::Concurrency).collect();
    let mut spread: std::collections::BTreeMap<(String, u64), (std::collections::BTreeSet<u64>, usize)> = Default::default();
    for (i, e) in bursts.iter().enumerate() {
        let c = e.figures.get("concurrency").and_then(|v| v.as_u64()).unwrap_or(0);
        let entry = spread.entry(key(e)).or_default();
        entry.0.insert(c);
        entry.1 = i;
    }
    let (chosen, _) = spread.iter().max_by_key(|(_, (cs, last))| (cs.len(), *last))?;
    let chosen = chosen.clone();
    let mut by_c: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for e in bursts.into_iter().filter(|e| key(e) == chosen) {
        let c = e.figures.get("concurrency").and_then(|v| v.as_u64()).unwrap_or(0);
        let n = e.figures.get("count").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let s = e.figures.get("seconds").and_then(|v| v.as_f64()).unwrap_or(0.0);
        if c > 0 && s > 0.0 {
            let rate = n / s;
            let best = by_c.entry(c).or_insert(0.0);
            *best = best.max(rate);
        }
    }
    if by_c.is_empty() {
        return None;
    }
    let y_max = nice_max(by_c.values().cloned().fold(0.0, f64::max));
    let summary: Vec<String> = by_c.iter().map(|(c, r)| format!("c={c}: {r:.1}/s")).collect();
    let mut out = String::new();
    let what = if chosen.0.is_empty() { "bursts".to_string() } else { format!("bursts of {} × {}", chosen.1, chosen.0) };
    frame(&format!("Throughput by concurrency, {what} — {}", summary.join(", ")), &mut out);
    axes(&mut out, "concurrency", y_max, "tasks per second");
    let slot = (W - L - R) / by_c.len() as f64;
    for (i, (c, r)) in by_c.iter().enumerate() {
        let h = (H - B - T) * r / y_max;
        let x = L + slot * i as f64 + slot * 0.2;
        let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b82c4\"/>", H - B - h, slot * 0.6);
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{r:.1}</text>", x + slot * 0.3, H - B - h - 4.0);
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>", x + slot * 0.3, H - B + 14.0);
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// Early against late acks after a kill: tasks lost and tasks recovered, as recorded.
pub fn acks_chart(p: &Progress) -> Option<String> {
    let early = p.experiments.iter().rev().find(|e| e.kind == ExperimentKind::EarlyAckLoss);
    let late =
        p.experiments.iter().rev().find(|e| {
            e.kind == ExperimentKind::Recovery && e.figures.get("in_flight_at_kill").and_then(|v| v.as_f64()).unwrap_or(0.0) >= 1.0
        });
    if early.is_none() && late.is_none() {
        return None;
    }
    let num = |e: &Experiment, k: &str| e.figures.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    // (label, in flight at the kill, lost)
    let mut bars = vec![];
    if let Some(e) = early {
        bars.push(("early acks", num(e, "in_flight"), num(e, "lost")));
    }
    if let Some(e) = late {
        let lost = num(e, "tasks") - num(e, "succeeded") - num(e, "failed");
        bars.push(("late acks", num(e, "in_flight_at_kill"), lost.max(0.0)));
    }
    let y_max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let summary: Vec<String> = bars.iter().map(|b| format!("{}: {:.0} of {:.0} lost", b.0, b.2, b.1)).collect();
    let mut out = String::new();
    frame(&format!("A killed worker — {}", summary.join("; ")), &mut out);
    axes(&mut out, "ack mode", y_max, "tasks in flight at the kill");
    let slot = (W - L - R) / bars.len() as f64;
    for (i, (label, inflight, lost)) in bars.iter().enumerate() {
        let x = L + slot * i as f64 + slot * 0.25;
        let h_all = (H - B - T) * inflight / y_max;
        let h_lost = (H - B - T) * lost / y_max;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h_all:.1}\" fill=\"#6cc070\"/>",
            H - B - h_all,
            slot * 0.5
        );
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h_lost:.1}\" fill=\"#d9534f\"/>",
            H - B - h_lost,
            slot * 0.5
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}: {lost:.0} lost</text>",
            x + slot * 0.25,
            H - B + 14.0
        );
    }
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"#6cc070\">recovered</text>", W - R - 80.0, T + 14.0);
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"#d9534f\">lost</text>", W - R - 80.0, T + 30.0);
    out.push_str("</svg>\n");
    Some(out)
}

/// Every chart the recorded experiments allow: (file name, SVG).
pub fn all(p: &Progress) -> Vec<(String, String)> {
    let mut out = vec![];
    // The recovery from a kill is the experiment (a graceful stop comes after it only as
    // housekeeping); without one, the latest recovery.
    let recoveries = || p.experiments.iter().rev().filter(|e| e.kind == ExperimentKind::Recovery && e.series.len() >= 2);
    let num = |e: &Experiment, k: &str| e.figures.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    if let Some(e) =
        recoveries().find(|e| num(e, "in_flight_at_kill") >= 1.0 || num(e, "returned_at_stop") >= 1.0).or_else(|| recoveries().next())
        && let Some(svg) = recovery_chart(e)
    {
        out.push(("learnings-recovery.svg".to_string(), svg));
    }
    if let Some(svg) = throughput_chart(p) {
        out.push(("learnings-throughput.svg".to_string(), svg));
    }
    if let Some(svg) = acks_chart(p) {
        out.push(("learnings-acks.svg".to_string(), svg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn burst(task: &str, count: u64, concurrency: u64, seconds: f64) -> Experiment {
        let mut e = super::super::progress::experiment(
            ExperimentKind::Concurrency,
            "burst",
            json!({"task": task, "count": count, "concurrency": concurrency, "seconds": seconds, "peak_depth": 5, "drained": 1}),
        );
        e.series = vec![[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
        e
    }

    #[test]
    fn titles_fit_their_frame() {
        let long = "Throughput by concurrency, bursts of 20 × tasks.hello — c=1: 0.5/s, c=4: 2.0/s, c=8: 3.9/s, c=16: 7.7/s, c=32: 15.1/s";
        for line in title_lines(long) {
            assert!(line.chars().count() <= TITLE_CHARS, "{line}");
        }
        assert_eq!(title_lines(long).join(" "), long);
    }

    #[test]
    fn throughput_compares_like_with_like() {
        let mut p = Progress::new();
        p.experiments = vec![burst("tasks.add", 20, 4, 0.0082), burst("tasks.hello", 20, 4, 40.0), burst("tasks.hello", 20, 8, 20.0)];
        let svg = throughput_chart(&p).unwrap();
        assert!(svg.contains("bursts of 20 × tasks.hello"), "{svg}");
        assert!(svg.contains("c=4: 0.5/s") && svg.contains("c=8: 1.0/s") && !svg.contains("2439"), "{svg}");
    }

    #[test]
    fn the_recovery_chart_shows_the_kill_not_a_later_stop() {
        let rec = |in_flight: u64, tasks: u64| {
            let mut e = super::super::progress::experiment(
                ExperimentKind::Recovery,
                "recovery",
                json!({"tasks": tasks, "succeeded": tasks, "failed": 0, "peak_depth": tasks, "seconds": 3.0, "in_flight_at_kill": in_flight}),
            );
            e.series = vec![[0.0, tasks as f64, 0.0], [3.0, 0.0, 0.0]];
            e
        };
        let mut p = Progress::new();
        p.experiments = vec![rec(16, 16), rec(0, 3)];
        let charts = all(&p);
        let (_, svg) = charts.iter().find(|(n, _)| n == "learnings-recovery.svg").unwrap();
        assert!(svg.contains("16 of 16 tasks"), "{svg}");
    }
}
