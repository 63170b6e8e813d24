//! Drawing. Thin: everything shown is read from `App`.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, List, ListItem, Paragraph, Row, Table, TableState, Wrap,
};

use super::state::*;
use crate::celery::TaskState;
use crate::config::Track;
use crate::probes::{self, Status};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Wide enough for three columns.
pub fn is_wide(area: Rect) -> bool {
    area.width >= 120 && area.height >= 30
}

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let [header, body, footer] = Layout::vertical([Constraint::Length(1), Constraint::Min(5), Constraint::Length(1)]).areas(area);
    draw_header(f, app, header);
    draw_footer(f, app, footer);
    if is_wide(area) {
        let [left, mid, right] = Layout::horizontal([Constraint::Length(28), Constraint::Percentage(38), Constraint::Min(60)]).areas(body);
        let [lessons, checklist] =
            Layout::vertical([Constraint::Length(app.course.lessons.len() as u16 + 2), Constraint::Min(6)]).areas(left);
        draw_lesson_list(f, app, lessons);
        draw_checklist(f, app, checklist, true);
        draw_lesson(f, app, mid);
        draw_lab(f, app, right);
    } else {
        let [tabs, panel] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(body);
        draw_tabs(f, app, tabs);
        match app.focus {
            Focus::Lesson => draw_lesson(f, app, panel),
            Focus::Lab => draw_lab(f, app, panel),
            Focus::Checklist => {
                let [list, items] =
                    Layout::vertical([Constraint::Length(app.course.lessons.len() as u16 + 2), Constraint::Min(4)]).areas(panel);
                draw_lesson_list(f, app, list);
                draw_checklist(f, app, items, false);
            }
        }
    }
    if app.detail_open {
        draw_detail(f, app, area);
    }
    if let Some(ta) = &app.notes {
        let r = centered(area, 80, 60);
        f.render_widget(Clear, r);
        let block = Block::bordered().title(format!(" Notes · step {} · Esc saves ", app.current().step));
        let inner = block.inner(r);
        f.render_widget(block, r);
        f.render_widget(ta, inner);
    }
    if let Some((task, ta)) = &app.args_editor {
        let r = centered_fixed(area, 70.min(area.width), 5);
        f.render_widget(Clear, r);
        let block = Block::bordered().title(format!(" Arguments for {task} · Enter sets · Tab next task · Esc cancels "));
        let inner = block.inner(r);
        f.render_widget(block, r);
        f.render_widget(ta, inner);
    }
    if app.help {
        draw_help(f, area);
    }
    if app.no_color {
        let buf = f.buffer_mut();
        for cell in buf.content.iter_mut() {
            cell.set_fg(Color::Reset);
            cell.set_bg(Color::Reset);
        }
    }
}

fn badge(name: &str, b: Badge) -> Span<'static> {
    let (mark, color) = match b {
        Badge::Up => ("●", Color::Green),
        Badge::Down => ("✗", Color::Red),
        Badge::Unknown => ("○", Color::DarkGray),
    };
    Span::styled(format!("{mark} {name} "), Style::default().fg(color))
}

fn draw_header(f: &mut Frame, app: &App, area: Rect) {
    let l = app.current();
    let cluster = if app.track == Track::Local { Badge::Unknown } else { app.badges.cluster };
    let worker_badge = match app.worker.state {
        WorkerState::Running => Badge::Up,
        WorkerState::Failed | WorkerState::Killed => Badge::Down,
        _ => Badge::Unknown,
    };
    let mut spans = vec![
        Span::styled(" mqlab ", Style::default().add_modifier(Modifier::BOLD).fg(Color::Black).bg(Color::Cyan)),
        Span::raw(format!(" step {}/{} · {} ", l.step, app.course.lessons.len(), app.track.as_str())),
    ];
    if app.track == Track::K3s {
        spans.push(badge("cluster", cluster));
    }
    spans.extend([
        badge("amqp", app.badges.amqp),
        badge("mgmt", app.badges.management),
        badge("redis", app.badges.redis),
        badge(&format!("worker {}", app.worker.state.label()), worker_badge),
    ]);
    spans.push(Span::styled("? help", Style::default().fg(Color::DarkGray)));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let text = match &app.status {
        Some(s) => Line::from(Span::styled(format!(" {s}"), Style::default().fg(Color::Yellow))),
        None => Line::from(Span::styled(
            " ? keys · [ ] lesson · r check · w/s/k worker · h/A/d/b submit · Tab panel · n notes · q quit",
            Style::default().fg(Color::DarkGray),
        )),
    };
    f.render_widget(Paragraph::new(text), area);
}

fn draw_tabs(f: &mut Frame, app: &App, area: Rect) {
    let tab = |name: &str, key: &str, on: bool| {
        let style = if on { Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED) } else { Style::default().fg(Color::Gray) };
        Span::styled(format!(" {key} {name} "), style)
    };
    let ticked = app.progress.ticked(&app.course);
    let line = Line::from(vec![
        tab(&format!("Lesson {}", app.current().step), "1", app.focus == Focus::Lesson),
        Span::raw(" "),
        tab("Lab", "2", app.focus == Focus::Lab),
        Span::raw(" "),
        tab(&format!("Checklist {ticked}/{}", app.course.checklist().len()), "3", app.focus == Focus::Checklist),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn panel(title: String, focused: bool) -> Block<'static> {
    let style = if focused { Style::default().fg(Color::Cyan) } else { Style::default().fg(Color::DarkGray) };
    Block::bordered().border_style(style).title(Span::styled(title, Style::default().add_modifier(Modifier::BOLD)))
}

fn draw_lesson_list(f: &mut Frame, app: &App, area: Rect) {
    let items: Vec<ListItem> = app
        .course
        .lessons
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mark = app.lesson_mark(i);
            let color = match mark {
                '✓' => Color::Green,
                '✗' => Color::Red,
                _ => Color::Gray,
            };
            let cur = i == app.lesson;
            let style = if cur { Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED) } else { Style::default() };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{mark} "), Style::default().fg(color)),
                Span::styled(format!("{:>2} {}", l.step, l.title), style),
            ]))
        })
        .collect();
    f.render_widget(List::new(items).block(panel(" Lessons [ ] ".into(), false)), area);
}

fn draw_checklist(f: &mut Frame, app: &App, area: Rect, compact: bool) {
    let items = app.course.checklist();
    let ticked = app.progress.ticked(&app.course);
    let rows: Vec<ListItem> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let tick = app.progress.checklist.get(&item.id);
            let mark = match tick {
                Some(t) if t.by == "hand" => "[x]✎",
                Some(_) => "[x] ",
                None => "[ ] ",
            };
            let mut style = if tick.is_some() { Style::default().fg(Color::Green) } else { Style::default() };
            if app.focus == Focus::Checklist && i == app.checklist_selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            let how = if compact || tick.is_some() || item.manual && tick.is_none() {
                if item.manual && tick.is_none() { " (tick by hand: x)".to_string() } else { String::new() }
            } else {
                format!(" ← {}", item.ticked_by(app.track).join(", "))
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{mark}{}", item.text), style),
                Span::styled(how, Style::default().fg(Color::DarkGray)),
            ]))
        })
        .collect();
    let title = format!(" Checklist {ticked}/{} {} ", items.len(), gauge(ticked, items.len(), 10));
    f.render_widget(List::new(rows).block(panel(title, app.focus == Focus::Checklist)), area);
}

fn gauge(n: usize, of: usize, width: usize) -> String {
    let filled = (n * width).checked_div(of).unwrap_or(0).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn lesson_text(app: &mut App) -> Text<'static> {
    let key = (app.lesson, app.track);
    if let Some(t) = app.text_cache.get(&key) {
        return t.clone();
    }
    let md = app.current().text(app.track);
    let parsed = tui_markdown::from_str(&md);
    let owned = Text::from(
        parsed
            .lines
            .into_iter()
            .map(|l| {
                Line::from(l.spans.into_iter().map(|s| Span::styled(s.content.into_owned(), s.style)).collect::<Vec<_>>()).style(l.style)
            })
            .collect::<Vec<_>>(),
    );
    app.text_cache.insert(key, owned.clone());
    owned
}

fn draw_lesson(f: &mut Frame, app: &mut App, area: Rect) {
    let ids = app.lesson_checks();
    let check_rows = (ids.len() as u16).max(1) * 2 + 2;
    let [text_area, checks_area] = Layout::vertical([Constraint::Min(5), Constraint::Length(check_rows.min(area.height / 2))]).areas(area);
    let text = lesson_text(app);
    let title = format!(" {} · {} ", app.current().step, app.current().title);
    let para = Paragraph::new(text).wrap(Wrap { trim: false }).scroll((app.scroll, 0)).block(panel(title, app.focus == Focus::Lesson));
    f.render_widget(para, text_area);

    let mut lines = vec![];
    if ids.is_empty() {
        lines.push(Line::from(Span::styled("This lesson is read, not checked.", Style::default().fg(Color::DarkGray))));
    }
    for id in &ids {
        let title = probes::info(id).map(|i| i.title).unwrap_or(id);
        match app.checks.get(id) {
            Some(CheckState::Running) => {
                lines.push(Line::from(vec![
                    Span::styled(format!("{} ", SPINNER[app.spinner % SPINNER.len()]), Style::default().fg(Color::Yellow)),
                    Span::raw(title.to_string()),
                ]));
            }
            Some(CheckState::Done(r)) => {
                let color = match r.status {
                    Status::Pass => Color::Green,
                    Status::Fail => Color::Red,
                    Status::Skipped => Color::DarkGray,
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{} ", r.status.mark()), Style::default().fg(color)),
                    Span::raw(r.detail.clone()),
                ]));
                if r.status == Status::Fail
                    && let Some(h) = &r.hint
                {
                    lines.push(Line::from(Span::styled(format!("  → {h}"), Style::default().fg(Color::Yellow))));
                }
            }
            None => {
                let last = app.progress.checks.get(id);
                let (mark, color) = match last.map(|r| r.status) {
                    Some(Status::Pass) => ("✓", Color::Green),
                    Some(Status::Fail) => ("✗", Color::Red),
                    _ => ("·", Color::DarkGray),
                };
                let detail = last.map(|r| format!("{title} (last run: {})", r.detail)).unwrap_or_else(|| format!("{title} (not run yet)"));
                lines.push(Line::from(vec![
                    Span::styled(format!("{mark} "), Style::default().fg(color)),
                    Span::styled(detail, Style::default().fg(Color::Gray)),
                ]));
            }
        }
    }
    let checks = Paragraph::new(lines).wrap(Wrap { trim: false }).block(panel(" Checks · r run ".into(), false));
    f.render_widget(checks, checks_area);
}

fn draw_lab(f: &mut Frame, app: &App, area: Rect) {
    if area.height >= 30 {
        let [worker_area, depth_area, rates_area, tasks_area] =
            Layout::vertical([Constraint::Length(5), Constraint::Length(9), Constraint::Length(8), Constraint::Min(4)]).areas(area);
        draw_worker(f, app, worker_area);
        draw_chart(f, app, depth_area);
        draw_rates(f, app, rates_area);
        draw_tasks(f, app, tasks_area);
    } else {
        let [worker_area, chart_area, tasks_area] =
            Layout::vertical([Constraint::Length(5), Constraint::Length(8), Constraint::Min(4)]).areas(area);
        draw_worker(f, app, worker_area);
        draw_chart(f, app, chart_area);
        draw_tasks(f, app, tasks_area);
    }
}

/// Publish, deliver and ack rates from the management API (computed by the broker every 5 s).
fn draw_rates(f: &mut Frame, app: &App, area: Rect) {
    let block = panel(" Message rates /s · management API, 5 s samples ".into(), false);
    if app.badges.management == Badge::Down {
        unavailable(f, area, block, "The management API does not answer: no rates. Is port 15672 forwarded and the plugin enabled?");
        return;
    }
    let now = app.rates.back().map(|r| r.0).unwrap_or(0.0);
    let x0 = (now - 300.0).max(0.0);
    let series = |i: usize| -> Vec<(f64, f64)> { app.rates.iter().filter(|r| r.0 >= x0).map(|r| (r.0, [r.1, r.2, r.3][i])).collect() };
    let lines = [("publish", Color::Cyan, series(0)), ("deliver", Color::Green, series(1)), ("ack", Color::Blue, series(2))];
    f.render_widget(line_chart(block, &lines, x0, now, 1.0, ""), area);
}

/// A message in place of a chart whose source does not answer.
fn unavailable(f: &mut Frame, area: Rect, block: Block<'static>, text: &'static str) {
    f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).style(Style::default().fg(Color::Red)).block(block), area);
}

/// Lines over time, from `x0` to `now` seconds, y from 0 to at least `min_top`.
fn line_chart<'a>(
    block: Block<'a>,
    lines: &'a [(&'static str, Color, Vec<(f64, f64)>)],
    x0: f64,
    now: f64,
    min_top: f64,
    note: &str,
) -> Chart<'a> {
    let ymax = lines.iter().flat_map(|l| l.2.iter()).map(|p| p.1).fold(min_top, f64::max).ceil();
    let datasets = lines
        .iter()
        .map(|(name, color, data)| {
            Dataset::default()
                .name(*name)
                .marker(symbols::Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(*color))
                .data(data)
        })
        .collect();
    Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([x0, x0.max(now).max(x0 + 10.0)])
                .labels(vec![Span::raw(format!("-{:.0}s{note}", now - x0)), Span::raw("now")]),
        )
        .y_axis(Axis::default().bounds([0.0, ymax]).labels(vec![Span::raw("0"), Span::raw(format!("{ymax:.0}"))]))
}

fn draw_worker(f: &mut Frame, app: &App, area: Rect) {
    let w = &app.worker;
    let color = match w.state {
        WorkerState::Running => Color::Green,
        WorkerState::Killed | WorkerState::Failed => Color::Red,
        _ => Color::Yellow,
    };
    let line1 = Line::from(vec![
        Span::styled(format!("{} ", w.state.label().to_uppercase()), Style::default().fg(color).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "concurrency {} · acks {} · processed {} ({} failed) · active {}",
            w.concurrency,
            if w.acks_late { "late" } else { "early" },
            w.processed,
            w.failed,
            w.active
        )),
    ]);
    let others: Vec<String> = app.workers.iter().map(|(name, (ident, active, _))| format!("{name} ({ident}, active {active})")).collect();
    let line2 = match &w.last_error {
        Some(e) => Line::from(Span::styled(e.clone(), Style::default().fg(Color::Red))),
        None => Line::from(Span::styled(
            "w start · s stop · k kill · W restart · +/- concurrency · a acks · h A d b B submit · e args",
            Style::default().fg(Color::DarkGray),
        )),
    };
    let line3 = if others.is_empty() {
        Line::from(Span::styled(
            "no worker seen on the broker yet (workers announce themselves every 2 s)",
            Style::default().fg(Color::DarkGray),
        ))
    } else {
        Line::from(format!("on the broker: {}", others.join(", ")))
    };
    f.render_widget(Paragraph::new(vec![line1, line2, line3]).block(panel(" Worker pool ".into(), app.focus == Focus::Lab)), area);
}

fn draw_chart(f: &mut Frame, app: &App, area: Rect) {
    let s = app.sample.unwrap_or_default();
    let title = format!(
        " Queue {} · ready {} unacked {} · consumers {} · publish {:.1}/s deliver {:.1}/s ack {:.1}/s ",
        app.cfg.queue, s.ready, s.unacked, s.consumers, s.publish_rate, s.deliver_rate, s.ack_rate
    );
    let block = panel(title, false);
    if app.badges.amqp == Badge::Down && app.badges.management == Badge::Down {
        unavailable(f, area, block, "The broker does not answer (AMQP and management API). Is RabbitMQ running and its port-forward up?");
        return;
    }
    let now = app.depth.back().map(|d| d.0).unwrap_or(0.0);
    let x0 = (now - 120.0).max(0.0);
    let recent = || app.depth.iter().filter(|d| d.0 >= x0);
    let lines = [
        ("ready", Color::Yellow, recent().map(|d| (d.0, d.1 as f64)).collect()),
        ("unacked", Color::Magenta, recent().map(|d| (d.0, d.2 as f64)).collect()),
    ];
    let note = if app.badges.management == Badge::Down { " (management API down: rates unavailable)" } else { "" };
    f.render_widget(line_chart(block, &lines, x0, now, 4.0, note), area);
}

fn clock(app: &App, t: DateTime<Utc>) -> String {
    t.with_timezone(&app.tz).format("%H:%M:%S%.3f").to_string()
}

fn delta(from: Option<&DateTime<Utc>>, to: Option<&DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format!("+{:.3}s", (*b - *a).num_milliseconds().max(0) as f64 / 1000.0),
        _ => String::new(),
    }
}

fn state_style(s: TaskState) -> Style {
    match s {
        TaskState::Success => Style::default().fg(Color::Green),
        TaskState::Failure | TaskState::Rejected | TaskState::Revoked => Style::default().fg(Color::Red),
        TaskState::Started => Style::default().fg(Color::Cyan),
        _ => Style::default().fg(Color::Yellow),
    }
}

fn draw_tasks(f: &mut Frame, app: &App, area: Rect) {
    // Columns by width: the narrow layout keeps id, task, args, state, total time and result.
    let full = area.width >= 100;
    let mid = area.width >= 76;
    let rows: Vec<Row> = app
        .tasks
        .iter()
        .map(|t| {
            let sent = t.times.get(&TaskState::Pending).or_else(|| t.times.get(&TaskState::Received));
            let started = t.times.get(&TaskState::Started);
            let done = t.times.iter().find(|(s, _)| s.is_ready() || **s == TaskState::Rejected).map(|(_, v)| v);
            let mut cells = vec![
                Cell::from(t.id.chars().take(8).collect::<String>()),
                Cell::from(t.name.trim_start_matches("tasks.").to_string()),
                Cell::from(t.args.clone()),
                Cell::from(Span::styled(t.state.as_str(), state_style(t.state))),
            ];
            if mid {
                cells.push(Cell::from(sent.map(|s| clock(app, *s)).unwrap_or_default()));
                cells.push(Cell::from(delta(sent, started)));
            }
            cells.push(Cell::from(delta(sent, done)));
            if full {
                cells.push(Cell::from(t.runtime.map(|r| format!("{r:.3}s")).unwrap_or_default()));
            }
            cells.push(Cell::from(t.outcome.clone().unwrap_or_default()));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(8), Constraint::Length(6), Constraint::Length(10), Constraint::Length(8)];
    let mut header = vec!["id", "task", "args", "state"];
    if mid {
        widths.extend([Constraint::Length(12), Constraint::Length(8)]);
        header.extend(["sent", "started"]);
    }
    widths.push(Constraint::Length(8));
    header.push("done");
    if full {
        widths.push(Constraint::Length(8));
        header.push("runtime");
    }
    widths.push(Constraint::Min(10));
    header.push("result");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(panel(format!(" Tasks ({}) · Enter shows the message ", app.tasks.len()), app.focus == Focus::Lab));
    let mut state = TableState::default();
    if app.focus == Focus::Lab && !app.tasks.is_empty() {
        state.select(Some(app.selected_task));
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let Some(t) = app.tasks.get(app.selected_task) else { return };
    let r = centered(area, 90, 85);
    f.render_widget(Clear, r);
    let mut lines: Vec<Line> = vec![Line::from(format!("{}[{}] {}  {}", t.name, t.id, t.args, t.state).bold())];
    for (s, at) in &t.times {
        lines.push(Line::from(format!("  {:<9} {}", s.as_str(), clock(app, *at))));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Message as sent (properties, headers, body):".bold()));
    match &t.raw {
        Some(raw) => lines.extend(serde_json::to_string_pretty(raw).unwrap_or_default().lines().map(|l| Line::from(l.to_string()))),
        None => lines.push(Line::from("  (sent by another client: only the worker's view is known)")),
    }
    lines.push(Line::from(""));
    lines.push(Line::from(format!("Stored result (Redis key celery-task-meta-{}):", t.id).bold()));
    match &t.stored {
        Some(v) => lines.extend(serde_json::to_string_pretty(v).unwrap_or_default().lines().map(|l| Line::from(l.to_string()))),
        None => lines.push(Line::from("  (nothing stored yet)")),
    }
    if let Some(tb) = &t.traceback {
        lines.push(Line::from(""));
        lines.extend(tb.lines().map(|l| Line::from(Span::styled(l.to_string(), Style::default().fg(Color::Red)))));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::bordered().title(" Task · Esc closes ")), r);
}

pub const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?", "this help"),
    ("Tab, Shift-Tab, 1 2 3", "switch panel: lesson, lab, checklist"),
    ("[ ]  (← → in a lesson)", "previous / next lesson"),
    ("↑ ↓ PgUp PgDn Home, wheel", "scroll the lesson / move in a list"),
    ("r / R", "run this lesson's checks / every check"),
    ("T", "switch track: k3s ↔ local"),
    ("n", "notes for this lesson (Esc saves)"),
    ("w / s / k / W", "worker: start / stop gracefully / kill / restart"),
    ("+ / -", "double / halve the worker's concurrency"),
    ("a", "acks late ↔ early"),
    ("h / A / d", "submit tasks.hello / tasks.add / tasks.divide"),
    ("b / B", "burst: 20 × hello / 100 × add"),
    ("e", "edit the arguments of the submit keys"),
    ("Enter (lab)", "show the selected task's message and result"),
    ("x (checklist)", "tick / untick an item by hand"),
    ("E", "export LEARNINGS.md to the current directory"),
    ("S", "start a private RabbitMQ and Redis (local track)"),
];

fn draw_help(f: &mut Frame, area: Rect) {
    let r = centered_fixed(area, 72.min(area.width), (HELP.len() as u16 + 4).min(area.height));
    f.render_widget(Clear, r);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| Line::from(vec![Span::styled(format!("{k:<28}"), Style::default().fg(Color::Cyan)), Span::raw(*v)]))
        .collect();
    f.render_widget(Paragraph::new(lines).block(Block::bordered().borders(Borders::ALL).title(" Keys · any key closes ")), r);
}

fn centered(area: Rect, pct_x: u16, pct_y: u16) -> Rect {
    let v = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage((100 - pct_y) / 2), Constraint::Percentage(pct_y), Constraint::Min(0)])
        .split(area)[1];
    Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage((100 - pct_x) / 2), Constraint::Percentage(pct_x), Constraint::Min(0)])
        .split(v)[1]
}

fn centered_fixed(area: Rect, w: u16, h: u16) -> Rect {
    let x = area.x + area.width.saturating_sub(w) / 2;
    let y = area.y + area.height.saturating_sub(h) / 2;
    Rect { x, y, width: w.min(area.width), height: h.min(area.height) }
}
