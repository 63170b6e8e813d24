//! Drawing. Thin: everything shown is read from `App` (the view only records the sizes it drew
//! at, for paging).
//!
//! From 100 columns up the lesson is the main view, at a readable measure, with a live panel
//! beside it chosen by the step; below that, the screens are tabs. The full lab is its own screen.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Block, BorderType, Cell, Chart, Clear, Dataset, GraphType, LegendPosition, List, ListItem, Paragraph, Row, Scrollbar,
    ScrollbarOrientation, ScrollbarState, Table, TableState, Wrap,
};

use super::keymap::{self, KEYMAP};
use super::markdown::{self, Kind, MdLine};
use super::state::*;
use crate::celery::TaskState;
use crate::config::{Track, mask_url};
use crate::probes::{self, Status};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The widest the lesson's text gets (a readable measure).
pub const MEASURE: u16 = 100;

/// Wide enough for the lesson with its live panel beside it.
pub fn is_wide(area: Rect) -> bool {
    area.width >= 100 && area.height >= 20
}

/// The lesson column's width on a wide screen: at least 60%, text at most `MEASURE` columns.
pub fn lesson_width(total: u16) -> u16 {
    total * 60 / 100
}

/// The width the lesson's text is wrapped at, for a terminal of `area`.
pub fn lesson_text_width(area: Rect) -> u16 {
    let col = if is_wide(area) { lesson_width(area.width) } else { area.width };
    // Borders and the scrollbar column.
    col.saturating_sub(3).min(MEASURE)
}

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    app.wide = is_wide(area);
    let [header, body, footer] = Layout::vertical([Constraint::Length(1), Constraint::Min(5), Constraint::Length(1)]).areas(area);
    draw_header(f, app, header);
    draw_footer(f, app, footer);
    let body = if app.wide {
        body
    } else {
        let [tabs, panel] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(body);
        draw_tabs(f, app, tabs);
        panel
    };
    match app.focus {
        Focus::Lesson if app.wide => {
            let [left, right] = Layout::horizontal([Constraint::Length(lesson_width(body.width)), Constraint::Min(20)]).areas(body);
            draw_lesson(f, app, left);
            draw_live(f, app, right);
        }
        Focus::Lesson => draw_lesson(f, app, body),
        Focus::Lab => draw_lab(f, app, body),
        Focus::Checklist => {
            let [list, items] = Layout::vertical([Constraint::Length(app.course.lessons.len() as u16 + 2), Constraint::Min(4)]).areas(body);
            draw_lesson_list(f, app, list);
            draw_checklist(f, app, items, app.focus == Focus::Checklist);
        }
    }
    for i in 0..app.modals.len() {
        draw_modal(f, app, i, area);
    }
    if app.no_color {
        let buf = f.buffer_mut();
        for cell in buf.content.iter_mut() {
            cell.set_fg(Color::Reset);
            cell.set_bg(Color::Reset);
        }
    }
}

fn draw_modal(f: &mut Frame, app: &mut App, i: usize, area: Rect) {
    match &app.modals[i] {
        Modal::Help { .. } => draw_help(f, app, i, area),
        Modal::Detail { .. } => draw_detail(f, app, i, area),
        Modal::Notes(ta) => {
            let r = centered(area, 80, 60);
            f.render_widget(Clear, r);
            let block =
                Block::bordered().border_type(BorderType::Thick).title(format!(" Notes · step {} · Esc saves ", app.current().step));
            let inner = block.inner(r);
            f.render_widget(block, r);
            f.render_widget(ta, inner);
        }
        Modal::Args(task, ta) => {
            let r = centered_fixed(area, 76.min(area.width), 5);
            f.render_widget(Clear, r);
            let block = Block::bordered()
                .border_type(BorderType::Thick)
                .title(format!(" Arguments for {task} · Enter sets · Tab next · Esc cancels "));
            let inner = block.inner(r);
            f.render_widget(block, r);
            f.render_widget(ta, inner);
        }
        Modal::Filter(ta) => {
            let r = centered_fixed(area, 60.min(area.width), 3);
            f.render_widget(Clear, r);
            let block = Block::bordered().border_type(BorderType::Thick).title(" Filter tasks · Enter keeps · Esc clears ");
            let inner = block.inner(r);
            f.render_widget(block, r);
            f.render_widget(ta, inner);
        }
        Modal::Start => draw_start(f, app, area),
        Modal::Commands { selected } => {
            let selected = *selected;
            let cmds = app.current().runnable(app.track, &app.cfg);
            let r = centered(area, 90, 80);
            // Every command can be read whole before Enter: long lines wrap (a ↪ marks the
            // continuation; the command itself is unchanged), and the list scrolls to keep the
            // chosen one in view.
            let width = r.width.saturating_sub(2).max(12) as usize;
            let mut lines = vec![];
            for l in markdown::wrap_plain(
                &format!(
                    "Commands of step {} — shown exactly as they run, in a shell here with your environment (KUBECONFIG, PATH; mqlab lines use this app's broker and backend; secrets only as $MQLAB_… variables).",
                    app.current().step
                ),
                width,
            ) {
                lines.push(Line::from(Span::styled(l, Style::default().fg(Color::DarkGray))));
            }
            lines.push(Line::from(""));
            let mut chosen = (0, 0);
            for (n, c) in cmds.iter().enumerate() {
                let on = n == selected;
                let start = lines.len();
                let style = if on { markdown::code_style().add_modifier(Modifier::BOLD) } else { markdown::code_style() };
                for (j, l) in c.command.lines().enumerate() {
                    let mark = if j == 0 && on { "▶ " } else { "  " };
                    for (k, piece) in wrap_code(l, width.saturating_sub(4)).into_iter().enumerate() {
                        let lead = if k == 0 { Span::raw(mark) } else { Span::styled("↪ ", Style::default().fg(Color::DarkGray)) };
                        lines.push(Line::from(vec![lead, Span::styled(piece, style)]));
                    }
                }
                if on {
                    chosen = (start, lines.len());
                }
                lines.push(Line::from(""));
            }
            let footer =
                Line::from(Span::styled("↑↓ choose · Enter runs it · y copies it (OSC 52) · Esc closes", Style::default().fg(Color::Cyan)));
            let view = r.height.saturating_sub(3) as usize;
            let total = lines.len();
            let offset = chosen.1.saturating_sub(view).min(chosen.0).min(total.saturating_sub(view));
            let mut shown: Vec<Line> = lines.into_iter().skip(offset).take(view).collect();
            shown.push(footer);
            f.render_widget(Clear, r);
            let title = format!(" Run a command of this step {}", position(offset as u16, view as u16, total as u16));
            let block = Block::bordered().border_type(BorderType::Thick).title(title);
            f.render_widget(Paragraph::new(shown).block(block), r);
            scrollbar(f, r, offset as u16, view as u16, total as u16);
        }
        Modal::Predict { n, input } => {
            let lesson = app.current();
            let Some(p) = lesson.predict.get(*n) else { return };
            let r = centered(area, 80, 60);
            let width = r.width.saturating_sub(4).max(20) as usize;
            let mut lines: Vec<Line<'static>> = vec![];
            for l in markdown::wrap_plain(&p.q, width) {
                lines.push(Line::from(Span::styled(l, Style::default().add_modifier(Modifier::BOLD))));
            }
            lines.push(Line::from(""));
            if let Some(o) = app.progress.outcome(lesson.step, p) {
                let before = format!("before: {} {}", crate::lessons::progress::number(o.predicted.value), p.unit);
                lines.push(Line::from(Span::styled(before, Style::default().fg(Color::Gray))));
            }
            lines.push(Line::from(vec![
                Span::raw("your prediction: "),
                Span::styled(format!("{input}▏"), Style::default().add_modifier(Modifier::BOLD)),
                Span::raw(format!(" {}", p.unit)),
            ]));
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                "a number, then Enter · ↑↓ other questions · Esc closes (what you answered is kept)",
                Style::default().fg(Color::Cyan),
            )));
            f.render_widget(Clear, r);
            let title = format!(" Predict · lesson {} · question {} of {} ", lesson.step, n + 1, lesson.predict.len());
            f.render_widget(Paragraph::new(lines).block(Block::bordered().border_type(BorderType::Thick).title(title)), r);
        }
        Modal::Quiz { n, picked } => {
            let (n, picked) = (*n, *picked);
            let quiz = app.course.quiz();
            let Some(q) = quiz.get(n) else { return };
            let r = centered(area, 80, 70);
            let width = r.width.saturating_sub(4).max(20) as usize;
            let mut lines: Vec<Line<'static>> = vec![];
            for l in markdown::wrap_plain(&format!("{}. {}", n + 1, q.q), width) {
                lines.push(Line::from(Span::styled(l, Style::default().add_modifier(Modifier::BOLD))));
            }
            lines.push(Line::from(""));
            for (i, c) in q.choices.iter().enumerate() {
                let letter = (b'a' + i as u8) as char;
                let style = match picked {
                    Some(_) if i == q.answer => Style::default().fg(Color::Green),
                    Some(p) if p == i => Style::default().fg(Color::Red),
                    _ => Style::default(),
                };
                for (j, l) in markdown::wrap_plain(&format!("{letter}) {c}"), width.saturating_sub(3)).into_iter().enumerate() {
                    lines.push(Line::from(Span::styled(if j == 0 { l } else { format!("   {l}") }, style)));
                }
            }
            lines.push(Line::from(""));
            match picked {
                None => lines.push(Line::from(Span::styled(
                    "a–d answers · ← back · Esc closes (your answers are kept)",
                    Style::default().fg(Color::Cyan),
                ))),
                Some(p) => {
                    let verdict = if p == q.answer {
                        "✓ right. ".to_string()
                    } else {
                        format!("✗ the answer is {}). ", (b'a' + q.answer as u8) as char)
                    };
                    for l in markdown::wrap_plain(&format!("{verdict}{}", q.why), width) {
                        lines.push(Line::from(l));
                    }
                    lines.push(Line::from(""));
                    lines.push(Line::from(Span::styled("Enter: next · ← back · Esc closes", Style::default().fg(Color::Cyan))));
                }
            }
            let right = app.progress.quiz.values().filter(|a| a.correct).count();
            f.render_widget(Clear, r);
            let title = format!(" Quiz · question {} of {} · {right} right so far ", n + 1, quiz.len());
            f.render_widget(Paragraph::new(lines).block(Block::bordered().border_type(BorderType::Thick).title(title)), r);
        }
        Modal::Confirm { what, lines, .. } => {
            let r = centered(area, 90, 85);
            let title = match what {
                super::state::Confirm::Solve { step } => {
                    format!("Run lesson {step}'s solution? · y or Enter runs it · n or Esc does nothing")
                }
                super::state::Confirm::ResetLesson { step } => {
                    format!("Reset lesson {step}? · y or Enter resets it · n or Esc does nothing")
                }
            };
            let shown: Vec<Line<'static>> = lines
                .iter()
                .map(|l| {
                    if l.trim_start().starts_with("$ ") {
                        Line::from(Span::styled(l.clone(), markdown::code_style()))
                    } else {
                        Line::from(l.clone())
                    }
                })
                .collect();
            scrolled_popup(f, app, i, r, &title, shown);
        }
        Modal::Output { .. } => {
            let r = centered(area, 90, 85);
            let Some(run) = app.shell.clone() else { return };
            let mut lines: Vec<Line<'static>> =
                run.command.lines().map(|l| Line::from(Span::styled(format!("$ {l}"), markdown::code_style()))).collect();
            if run.dropped > 0 {
                lines.push(Line::from(Span::styled(
                    format!("… {} earlier line(s) not kept", run.dropped),
                    Style::default().fg(Color::DarkGray),
                )));
            }
            lines.extend(run.lines.iter().map(|l| Line::from(l.clone())));
            let elapsed = (app.clock - run.started).num_milliseconds().max(0) as f64 / 1000.0;
            lines.push(Line::from(match &run.done {
                None => Span::styled(
                    format!("{} running {elapsed:.1} s · c cancels", SPINNER[app.spinner % SPINNER.len()]),
                    Style::default().fg(Color::Yellow),
                ),
                Some(d) if d.cancelled => Span::styled(format!("cancelled after {:.2} s", d.secs), Style::default().fg(Color::Yellow)),
                Some(d) => match d.code {
                    Some(0) => Span::styled(format!("exit 0 · {:.2} s", d.secs), Style::default().fg(Color::Green)),
                    Some(c) => Span::styled(format!("exit {c} · {:.2} s", d.secs), Style::default().fg(Color::Red)),
                    None => Span::styled(format!("ended by a signal · {:.2} s", d.secs), Style::default().fg(Color::Red)),
                },
            }));
            scrolled_popup(f, app, i, r, "Output · ↑↓ PgUp PgDn Home End", lines);
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
    let worker_badge = match app.worker.state {
        WorkerState::Running => Badge::Up,
        WorkerState::Failed | WorkerState::Killed => Badge::Down,
        _ => Badge::Unknown,
    };
    let mut spans = vec![
        Span::styled(" mqlab ", Style::default().add_modifier(Modifier::BOLD).fg(Color::Black).bg(Color::Cyan)),
        Span::raw(format!(" step {}/{} · {} track ", l.step, app.course.lessons.len(), app.track.as_str())),
    ];
    if app.track == Track::K3s {
        spans.push(badge("cluster", app.badges.cluster));
    }
    spans.extend([
        badge("amqp", app.badges.amqp),
        badge("mgmt", app.badges.management),
        badge("redis", app.badges.redis),
        badge(&format!("worker {}", app.worker.state.label()), worker_badge),
    ]);
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if area.width as usize > used + 40 {
        // The steps at a glance.
        let strip: String = (0..app.course.lessons.len()).map(|i| format!("{}{}", i + 1, app.lesson_mark(i))).collect::<Vec<_>>().join(" ");
        spans.push(Span::styled(format!(" {strip} "), Style::default().fg(Color::Gray)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let text = match &app.status {
        Some(s) => Line::from(Span::styled(format!(" {s}"), Style::default().fg(Color::Yellow))),
        None => Line::from(Span::styled(format!(" {}", keymap::hints(app.scope())), Style::default().fg(Color::DarkGray))),
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

/// A bordered panel; the focused one has a thick border and a ▶ marker (visible without colour).
fn panel(title: String, focused: bool) -> Block<'static> {
    let (style, kind, mark) = if focused {
        (Style::default().fg(Color::Cyan), BorderType::Thick, "▶")
    } else {
        (Style::default().fg(Color::DarkGray), BorderType::Plain, "")
    };
    Block::bordered()
        .border_type(kind)
        .border_style(style)
        .title(Span::styled(format!("{mark}{title}"), Style::default().add_modifier(Modifier::BOLD)))
}

/// "12–40/130" for a scrolled view.
fn position(offset: u16, view: u16, total: u16) -> String {
    if total <= view { String::new() } else { format!(" {}–{}/{} ", offset + 1, (offset + view).min(total), total) }
}

fn scrollbar(f: &mut Frame, area: Rect, offset: u16, view: u16, total: u16) {
    if total <= view || area.height < 3 {
        return;
    }
    let mut state =
        ScrollbarState::new(total.saturating_sub(view) as usize).position(offset as usize).viewport_content_length(view as usize);
    let inner = Rect { y: area.y + 1, height: area.height - 2, ..area };
    f.render_stateful_widget(Scrollbar::new(ScrollbarOrientation::VerticalRight).begin_symbol(None).end_symbol(None), inner, &mut state);
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
            let missing = l.missing_experiments(&app.progress);
            let mut spans = vec![
                Span::styled(format!("{mark} "), Style::default().fg(color)),
                Span::styled(format!("{:>2} {}", l.step, l.title_for(app.track)), style),
            ];
            if !missing.is_empty()
                && l.checks(app.track).iter().all(|c| app.progress.checks.get(c).is_some_and(|r| r.status == Status::Pass))
            {
                spans.push(Span::styled(format!("  (to do: {})", missing.join(", ")), Style::default().fg(Color::DarkGray)));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    f.render_widget(List::new(items).block(panel(" Lessons · [ ] ".into(), false)), area);
}

fn draw_checklist(f: &mut Frame, app: &App, area: Rect, focused: bool) {
    let items = app.course.checklist();
    let ticked = app.progress.ticked(&app.course);
    let width = area.width.saturating_sub(2) as usize;
    let mut lines: Vec<ListItem> = vec![];
    for (i, item) in items.iter().enumerate() {
        let tick = app.progress.tick_for(item, app.track);
        let mark = match tick {
            Some(t) if t.by == "hand" => "[x]✎ ",
            Some(_) => "[x] ",
            None => "[ ] ",
        };
        let mut style = if tick.is_some() { Style::default().fg(Color::Green) } else { Style::default() };
        if focused && i == app.checklist_selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let how = match tick {
            Some(t) => t.evidence.clone().unwrap_or_default(),
            None if item.manual => "tick by hand (x) when done".to_string(),
            None => item.how(app.track),
        };
        let text = format!("{mark}{}", item.text_for(app.track));
        let mut rows = vec![];
        for (j, l) in markdown::wrap_plain(&text, width).into_iter().enumerate() {
            let l = if j == 0 { l } else { format!("    {l}") };
            rows.push(Line::from(Span::styled(l, style)));
        }
        if !how.is_empty() {
            for l in markdown::wrap_plain(&how, width.saturating_sub(6)) {
                rows.push(Line::from(Span::styled(format!("      {l}"), Style::default().fg(Color::DarkGray))));
            }
        }
        lines.push(ListItem::new(rows));
    }
    let title = format!(" Checklist {ticked}/{} {} · x ticks by hand ", items.len(), gauge(ticked, items.len(), 10));
    let mut state = ratatui::widgets::ListState::default();
    state.select(if focused { Some(app.checklist_selected) } else { None });
    f.render_stateful_widget(List::new(lines).block(panel(title, focused)), area, &mut state);
}

fn gauge(n: usize, of: usize, width: usize) -> String {
    let filled = (n * width).checked_div(of).unwrap_or(0).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// The lesson's lines for a text width, rendered once per (lesson, track, width, sideways scroll).
pub fn lesson_lines(app: &mut App, width: u16) -> Rc<Vec<MdLine>> {
    let key = (app.lesson, app.track, width, app.hscroll);
    if let Some(t) = app.text_cache.get(&key) {
        return t.clone();
    }
    let md = crate::lessons::template::fill(&app.current().text(app.track), &app.cfg);
    let lines = Rc::new(markdown::render(&md, width, app.hscroll));
    if app.text_cache.len() > 64 {
        app.text_cache.clear();
    }
    app.text_cache.insert(key, lines.clone());
    lines
}

fn draw_lesson(f: &mut Frame, app: &mut App, area: Rect) {
    let ids = app.current().checks(app.track).to_vec();
    let check_lines = check_lines(app, &ids, area.width.saturating_sub(2));
    let want = check_lines.len() as u16 + 2;
    let [text_area, checks_area] = Layout::vertical([Constraint::Min(5), Constraint::Length(want.min(area.height / 3).max(4))]).areas(area);
    let width = text_area.width.saturating_sub(3).min(MEASURE);
    let lines = lesson_lines(app, width);
    let total = lines.len() as u16;
    let view = text_area.height.saturating_sub(2);
    app.lesson_lines = total;
    app.lesson_view = view;
    let max_code = lines.iter().filter(|l| l.kind == Kind::Code).map(|l| l.code_width).max().unwrap_or(0);
    let avail = (width as usize).saturating_sub(4);
    app.lesson_wide_code = max_code > avail;
    app.lesson_max_hscroll = max_code.saturating_sub(avail.saturating_sub(8));
    app.scroll = app.scroll.min(total.saturating_sub(view));
    let focused = app.focus == Focus::Lesson && app.pane == Pane::Text;
    let mut title = format!(" {}/{} · {} ", app.current().step, app.course.lessons.len(), app.current().title_for(app.track));
    title.push_str(&position(app.scroll, view, total));
    if app.lesson_wide_code {
        title.push_str(if app.hscroll > 0 { "· ← → code " } else { "· → wide code " });
    }
    let text = Text::from(lines.iter().skip(app.scroll as usize).take(view as usize).map(|l| l.line.clone()).collect::<Vec<_>>());
    f.render_widget(Paragraph::new(text).block(panel(title, focused)), text_area);
    scrollbar(f, text_area, app.scroll, view, total);

    let cview = checks_area.height.saturating_sub(2);
    let ctotal = check_lines.len() as u16;
    app.checks_scroll = app.checks_scroll.min(ctotal.saturating_sub(cview));
    let cfocused = app.focus == Focus::Lesson && app.pane == Pane::Checks;
    let ctitle = format!(" Checks · r runs {}", position(app.checks_scroll, cview, ctotal));
    let shown: Vec<Line> = check_lines.into_iter().skip(app.checks_scroll as usize).take(cview as usize).collect();
    f.render_widget(Paragraph::new(shown).block(panel(ctitle, cfocused)), checks_area);
    scrollbar(f, checks_area, app.checks_scroll, cview, ctotal);
}

/// The check lines of a lesson, wrapped between words to `width`.
fn check_lines(app: &App, ids: &[String], width: u16) -> Vec<Line<'static>> {
    let width = width.saturating_sub(1) as usize;
    let mut lines = vec![];
    let push = |mark: Span<'static>, text: String, style: Style, lines: &mut Vec<Line<'static>>| {
        for (i, l) in markdown::wrap_plain(&text, width.saturating_sub(2)).into_iter().enumerate() {
            let m = if i == 0 { mark.clone() } else { Span::raw("  ") };
            lines.push(Line::from(vec![m, Span::styled(l, style)]));
        }
    };
    if ids.is_empty() {
        push(Span::raw("  "), "This lesson is read, not checked.".into(), Style::default().fg(Color::DarkGray), &mut lines);
    }
    for id in ids {
        let title = probes::title_for(id, &app.cfg);
        match app.checks.get(id) {
            Some(CheckState::Running) => {
                let mark = Span::styled(format!("{} ", SPINNER[app.spinner % SPINNER.len()]), Style::default().fg(Color::Yellow));
                push(mark, title.to_string(), Style::default(), &mut lines);
            }
            Some(CheckState::Done(r)) => {
                let color = match r.status {
                    Status::Pass => Color::Green,
                    Status::Fail => Color::Red,
                    Status::Skipped => Color::DarkGray,
                };
                // Earned stays earned: a check the learner's action passed before and an
                // experiment has made false now shows both.
                let earned = app.progress.earned_for(app.current().step, id, app.track);
                let (mark, detail) = match (r.status, earned) {
                    (Status::Fail, Some(e)) => (
                        Span::styled("✓ ", Style::default().fg(Color::Green)),
                        format!("earned {} · now ✗ {}", e.at.with_timezone(&chrono::Local).format("%H:%M"), r.detail),
                    ),
                    _ => (Span::styled(format!("{} ", r.status.mark()), Style::default().fg(color)), r.detail.clone()),
                };
                push(mark, detail, Style::default(), &mut lines);
                if r.status == Status::Fail && !r.expected.is_empty() {
                    push(Span::raw("  "), format!("expected: {}", r.expected), Style::default().fg(Color::Gray), &mut lines);
                }
                let first_failing = r.status == Status::Fail
                    && ids.iter().find(|i| matches!(app.checks.get(*i), Some(CheckState::Done(x)) if x.status == Status::Fail)) == Some(id);
                let rungs = if first_failing { probes::ladder(r, &app.cfg) } else { vec![] };
                if rungs.len() > 1 {
                    // The ladder, one rung per `i`: a nudge, the step, the command.
                    if app.hint_level == 0 {
                        push(
                            Span::raw("  "),
                            format!("i: a hint ({} steps)", rungs.len()),
                            Style::default().fg(Color::DarkGray),
                            &mut lines,
                        );
                    }
                    for (n, rung) in rungs.iter().take(app.hint_level).enumerate() {
                        push(
                            Span::styled("→ ", Style::default().fg(Color::Yellow)),
                            format!("hint {}/{}: {rung}", n + 1, rungs.len()),
                            Style::default().fg(Color::Yellow),
                            &mut lines,
                        );
                    }
                } else if r.status == Status::Fail
                    && let Some(h) = &r.hint
                {
                    push(Span::styled("→ ", Style::default().fg(Color::Yellow)), h.clone(), Style::default().fg(Color::Yellow), &mut lines);
                }
                if app.show_calls && !r.call.is_empty() {
                    push(Span::raw("  "), format!("call: {}", r.call), Style::default().fg(Color::DarkGray), &mut lines);
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
                push(Span::styled(format!("{mark} "), Style::default().fg(color)), detail, Style::default().fg(Color::Gray), &mut lines);
            }
        }
    }
    // A state that spoils the experiments (two workers on the queue) is said when seen.
    for d in &app.current().diagnose {
        if let Some(CheckState::Done(r)) = app.checks.get(d)
            && r.status == Status::Fail
        {
            push(Span::styled("! ", Style::default().fg(Color::Yellow)), r.detail.clone(), Style::default().fg(Color::Yellow), &mut lines);
            if let Some(h) = &r.hint {
                push(Span::styled("→ ", Style::default().fg(Color::Yellow)), h.clone(), Style::default().fg(Color::Yellow), &mut lines);
            }
        }
    }
    // Predictions: asked, answered, then beside what the experiment measured.
    let step = app.current().step;
    for p in &app.current().predict {
        use crate::lessons::progress::number;
        match app.progress.outcome(step, p) {
            None => push(
                Span::styled("? ", Style::default().fg(Color::Cyan)),
                format!("Predict first (P): {}", p.q),
                Style::default().fg(Color::Cyan),
                &mut lines,
            ),
            Some(o) => match o.observed {
                None => push(
                    Span::styled("? ", Style::default().fg(Color::Cyan)),
                    format!("You predicted {} {} ({}): not measured yet", number(o.predicted.value), p.unit, p.id),
                    Style::default().fg(Color::Gray),
                    &mut lines,
                ),
                Some((v, _)) => {
                    push(
                        Span::styled("= ", Style::default().fg(Color::Cyan)),
                        format!(
                            "You predicted {} {unit}; measured {} {unit}. {}",
                            number(o.predicted.value),
                            number(v),
                            p.why,
                            unit = p.unit
                        ),
                        Style::default(),
                        &mut lines,
                    );
                }
            },
        }
    }
    let missing = app.current().missing_experiments(&app.progress);
    if !missing.is_empty() {
        let what: Vec<&str> =
            missing.iter().filter_map(|m| crate::lessons::progress::EXPERIMENTS.iter().find(|(n, _)| n == m).map(|(_, d)| *d)).collect();
        push(
            Span::styled("○ ", Style::default().fg(Color::DarkGray)),
            format!("To finish this step, do it in the lab or with your own worker: {} (D runs the lesson's solution)", what.join("; ")),
            Style::default().fg(Color::Gray),
            &mut lines,
        );
    }
    lines
}

/// How long ago, in words a learner reads at a glance.
fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
    if s < 1.0 {
        "now".into()
    } else if s < 90.0 {
        format!("{s:.0} s ago")
    } else {
        format!("{:.0} min ago", s / 60.0)
    }
}

fn now_of(app: &App) -> DateTime<Utc> {
    app.clock
}

/// The panel beside the lesson.
fn draw_live(f: &mut Frame, app: &mut App, area: Rect) {
    let focused = app.focus == Focus::Lesson && app.pane == Pane::Live;
    match app.live_panel() {
        LivePanel::Cluster => draw_status(f, app, area, focused, &CLUSTER_CHECKS, " Cluster · kubectl's view "),
        LivePanel::Services => draw_status(f, app, area, focused, &LOCAL_CHECKS, " RabbitMQ and Redis on this machine "),
        LivePanel::Management => draw_management(f, app, area, focused),
        LivePanel::Lab => {
            let [w, q, t] =
                Layout::vertical([Constraint::Length(5), Constraint::Length(7.min(area.height / 3)), Constraint::Min(4)]).areas(area);
            draw_worker(f, app, w, focused);
            draw_chart(f, app, q);
            draw_tasks(f, app, t, focused, true);
        }
        LivePanel::Checklist => draw_checklist(f, app, area, focused),
    }
}

const CLUSTER_CHECKS: [&str; 7] =
    ["kube.context", "kube.api", "kube.node_ready", "kube.namespace", "kube.rabbitmq_pod", "kube.redis_pod", "kube.services"];
const LOCAL_CHECKS: [&str; 3] = ["amqp.login", "mgmt.login", "redis.ping"];

/// Check-backed status lines with their age.
fn draw_status(f: &mut Frame, app: &App, area: Rect, focused: bool, ids: &[&str], title: &str) {
    let width = area.width.saturating_sub(4) as usize;
    let now = now_of(app);
    let mut lines: Vec<Line> = vec![];
    if app.track == Track::Local {
        let live = |b: Badge, name: &str, at: Option<DateTime<Utc>>| {
            let (m, c) = match b {
                Badge::Up => ("●", Color::Green),
                Badge::Down => ("✗", Color::Red),
                Badge::Unknown => ("○", Color::DarkGray),
            };
            Line::from(vec![
                Span::styled(format!("{m} "), Style::default().fg(c)),
                Span::raw(name.to_string()),
                Span::styled(at.map(|t| format!(" · {}", age(now_of(app), t))).unwrap_or_default(), Style::default().fg(Color::DarkGray)),
            ])
        };
        lines.push(live(app.badges.amqp, &format!("AMQP {}", mask_url(&app.cfg.broker_url)), app.depth_at));
        lines.push(live(app.badges.management, &format!("management {}", mask_url(&app.cfg.management_url)), app.sample_at));
        lines.push(live(app.badges.redis, &format!("Redis {}", mask_url(&app.cfg.result_backend)), None));
        lines.push(Line::from(""));
    } else {
        lines.extend(forward_lines(app, width));
        lines.push(Line::from(""));
    }
    for id in ids {
        let title = probes::title_for(id, &app.cfg);
        let (mark, color, detail, at) = match app.checks.get(*id) {
            Some(CheckState::Running) => (SPINNER[app.spinner % SPINNER.len()].to_string(), Color::Yellow, "checking…".to_string(), None),
            Some(CheckState::Done(r)) => (
                r.status.mark().to_string(),
                match r.status {
                    Status::Pass => Color::Green,
                    Status::Fail => Color::Red,
                    Status::Skipped => Color::DarkGray,
                },
                r.detail.clone(),
                Some(r.at),
            ),
            None => match app.progress.checks.get(*id) {
                Some(r) => (r.status.mark().to_string(), Color::Gray, format!("{} (from an earlier run)", r.detail), Some(r.at)),
                None => ("·".into(), Color::DarkGray, "not checked yet (r)".into(), None),
            },
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} "), Style::default().fg(color)),
            Span::styled(title.to_string(), Style::default().bold()),
        ]));
        for l in markdown::wrap_plain(&detail, width.saturating_sub(2)) {
            lines.push(Line::from(format!("  {l}")));
        }
        if let Some(at) = at {
            lines.push(Line::from(Span::styled(format!("  checked {}", age(now, at)), Style::default().fg(Color::DarkGray))));
        }
    }
    f.render_widget(Paragraph::new(lines).block(panel(title.to_string(), focused)), area);
}

/// The port-forwards: each one's local port, pod, state, bytes and reconnects; or how to start them.
fn forward_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    use crate::forward::State;
    let dim = Style::default().fg(Color::DarkGray);
    if let (None, Some(other)) = (&app.forwards, &app.forwards_elsewhere) {
        let mut lines =
            vec![Line::from(Span::styled(format!("Port-forwards served by `mqlab forward`, pid {}", other.pid), Style::default().bold()))];
        for (svc, local) in &other.ports {
            let what = crate::forward::TARGETS.iter().find(|t| t.port == *svc).map(|t| t.name).unwrap_or("port");
            let moved = if local != svc { format!(" · {svc} was taken") } else { String::new() };
            lines.push(Line::from(vec![
                Span::styled("● ", Style::default().fg(Color::Green)),
                Span::raw(format!("{what:<10} 127.0.0.1:{local:<5} → svc port {svc}")),
                Span::styled(moved, dim),
            ]));
        }
        lines.extend(
            markdown::wrap_plain("This app uses them; stop them in their terminal (Ctrl-C).", width)
                .into_iter()
                .map(|l| Line::from(Span::styled(l, dim))),
        );
        return lines;
    }
    let Some(fw) = &app.forwards else {
        return markdown::wrap_plain("Port-forwards: off. F starts mqlab's (AMQP, management, Redis), kept up across pod restarts.", width)
            .into_iter()
            .map(|l| Line::from(Span::styled(l, dim)))
            .collect();
    };
    if fw.list.is_empty() {
        return vec![Line::from(Span::styled(format!("{} starting port-forwards…", SPINNER[app.spinner % SPINNER.len()]), dim))];
    }
    let mut lines = vec![Line::from(Span::styled("Port-forwards (F stops)", Style::default().bold()))];
    for f in &fw.list {
        let c = &f.counters;
        let (mark, color, what) = match &f.state {
            State::Up { pod } => ("●", Color::Green, format!("→ {pod}")),
            State::Connecting => ("○", Color::Yellow, "connecting…".to_string()),
            State::Down { error } => ("✗", Color::Red, error.clone()),
        };
        let load = std::sync::atomic::Ordering::Relaxed;
        let moved = if f.local != f.target.port { format!(" · {} was taken", f.target.port) } else { String::new() };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} "), Style::default().fg(color)),
            Span::raw(format!("{:<10} 127.0.0.1:{:<5} ", f.target.name, f.local)),
            Span::raw(what),
            Span::styled(moved, dim),
        ]));
        lines.push(Line::from(Span::styled(
            format!(
                "  ↑{} ↓{} · {} open · {} closed{} · {} reconnect(s)",
                human_bytes(c.sent.load(load)),
                human_bytes(c.received.load(load)),
                c.open.load(load),
                c.closed(),
                match c.cut.load(load) {
                    0 => String::new(),
                    n => format!(" ({n} cut)"),
                },
                c.reconnects.load(load)
            ),
            dim,
        )));
    }
    lines
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn draw_management(f: &mut Frame, app: &App, area: Rect, focused: bool) {
    let block = panel(" Management API · 5 s samples ".into(), focused);
    if app.badges.management == Badge::Down {
        let msg = if app.track == Track::K3s {
            "The management API does not answer. Is port 15672 forwarded (F starts mqlab's forwards) and the pod ready?"
        } else {
            "The management API does not answer. Is the rabbitmq_management plugin enabled?"
        };
        unavailable(f, area, block, msg);
        return;
    }
    let mut lines: Vec<Line> = vec![];
    let now = now_of(app);
    match &app.overview {
        None => lines.push(Line::from(Span::styled("waiting for the first reading…", Style::default().fg(Color::DarkGray)))),
        Some((o, at)) => {
            lines.push(Line::from(vec![Span::raw("node "), Span::styled(o.node.clone(), Style::default().bold())]));
            lines.push(Line::from(format!("RabbitMQ {}", o.rabbitmq_version)));
            lines.push(Line::from(format!(
                "{} exchanges · {} queues · {} consumers · {} connections · {} channels",
                o.exchanges, o.queues, o.consumers, o.connections, o.channels
            )));
            lines.push(Line::from(Span::styled(format!("read {}", age(now, *at)), Style::default().fg(Color::DarkGray))));
            lines.push(Line::from(""));
            lines.push(Line::from("Exchanges in the vhost:".bold()));
            for (name, kind) in &o.exchange_names {
                let name = if name.is_empty() { "(AMQP default)" } else { name };
                lines.push(Line::from(format!("  {name:<24} {kind}")));
            }
        }
    }
    lines.push(Line::from(""));
    let s = app.sample.unwrap_or_default();
    lines.push(Line::from(format!("Queue {}: ready {} · unacked {} · consumers {}", app.cfg.queue, s.ready, s.unacked, s.consumers)));
    if let Some(at) = app.sample_at {
        lines.push(Line::from(Span::styled(format!("sampled {}", age(now, at)), Style::default().fg(Color::DarkGray))));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), area);
}

fn draw_lab(f: &mut Frame, app: &App, area: Rect) {
    if area.height >= 30 {
        let [top, depth_area, rates_area, tasks_area] =
            Layout::vertical([Constraint::Length(6), Constraint::Length(9), Constraint::Length(8), Constraint::Min(4)]).areas(area);
        if area.width >= 120 {
            let [w, others] = Layout::horizontal([Constraint::Percentage(55), Constraint::Min(30)]).areas(top);
            draw_worker(f, app, w, false);
            draw_workers(f, app, others);
        } else {
            draw_worker(f, app, top, false);
        }
        draw_chart(f, app, depth_area);
        draw_rates(f, app, rates_area);
        draw_tasks(f, app, tasks_area, app.focus == Focus::Lab, false);
    } else {
        let [worker_area, chart_area, tasks_area] =
            Layout::vertical([Constraint::Length(5), Constraint::Length(7), Constraint::Min(4)]).areas(area);
        draw_worker(f, app, worker_area, false);
        draw_chart(f, app, chart_area);
        draw_tasks(f, app, tasks_area, app.focus == Focus::Lab, false);
    }
}

/// Every worker seen on the broker through its events.
fn draw_workers(f: &mut Frame, app: &App, area: Rect) {
    let now = now_of(app);
    let rows: Vec<Row> = app
        .workers
        .iter()
        .map(|(name, w)| {
            let state = if w.online {
                Span::styled("online", Style::default().fg(Color::Green))
            } else {
                Span::styled("offline", Style::default().fg(Color::Red))
            };
            Row::new(vec![
                Cell::from(name.clone()),
                Cell::from(w.software.clone()),
                Cell::from(state),
                Cell::from(age(now, w.last_seen)),
                Cell::from(w.processed.to_string()),
                Cell::from(w.active.to_string()),
            ])
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Length(17),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(6),
    ];
    let header = Row::new(vec!["worker", "software", "state", "seen", "done", "active"]).style(Style::default().bold());
    let mut t = Table::new(rows, widths).header(header).block(panel(" Workers on the broker (events) ".into(), false));
    if app.workers.is_empty() {
        t = t.footer(Row::new(vec![Cell::from(Span::styled(
            "none seen yet: workers announce themselves every 2 s",
            Style::default().fg(Color::DarkGray),
        ))]));
    }
    f.render_widget(t, area);
}

/// Publish, deliver and ack rates from the management API (computed by the broker every 5 s).
fn draw_rates(f: &mut Frame, app: &App, area: Rect) {
    let block = panel(" Message rates /s · management API, 5 s samples ".into(), false);
    if app.badges.management == Badge::Down {
        unavailable(f, area, block, "The management API does not answer: no rates.");
        return;
    }
    let now = app.rates.back().map(|r| r.0).unwrap_or(0.0);
    let x0 = (now - 300.0).max(0.0);
    let series = |i: usize| -> Vec<(f64, f64)> { app.rates.iter().filter(|r| r.0 >= x0).map(|r| (r.0, [r.1, r.2, r.3][i])).collect() };
    let lines = [("publish", Color::Cyan, series(0)), ("deliver", Color::Green, series(1)), ("ack", Color::Blue, series(2))];
    f.render_widget(line_chart(block, &lines, x0, now, 1.0), area);
}

/// A message in place of a chart whose source does not answer.
fn unavailable(f: &mut Frame, area: Rect, block: Block<'static>, text: &'static str) {
    f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).style(Style::default().fg(Color::Red)).block(block), area);
}

/// One line of a chart: its legend, colour and points (seconds, value).
type Series = (&'static str, Color, Vec<(f64, f64)>);

/// Lines over time, from `x0` to `now` seconds, y from 0 to at least `min_top`, with a legend.
fn line_chart<'a>(block: Block<'a>, lines: &'a [Series], x0: f64, now: f64, min_top: f64) -> Chart<'a> {
    let ymax = lines.iter().flat_map(|l| l.2.iter()).map(|p| p.1).fold(min_top, f64::max).ceil();
    let marks = [symbols::Marker::Braille, symbols::Marker::Dot, symbols::Marker::Block];
    let datasets = lines
        .iter()
        .enumerate()
        .map(|(i, (name, color, data))| {
            Dataset::default()
                .name(*name)
                .marker(marks[i % marks.len()])
                .graph_type(GraphType::Line)
                .style(Style::default().fg(*color))
                .data(data)
        })
        .collect();
    Chart::new(datasets)
        .block(block)
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 1), Constraint::Ratio(1, 1)))
        .x_axis(
            Axis::default()
                .bounds([x0, x0.max(now).max(x0 + 10.0)])
                .labels(vec![Span::raw(format!("-{:.0}s", (now - x0).max(10.0))), Span::raw("now")]),
        )
        .y_axis(Axis::default().bounds([0.0, ymax]).labels(vec![Span::raw("0"), Span::raw(format!("{ymax:.0}"))]))
}

fn draw_worker(f: &mut Frame, app: &App, area: Rect, focused: bool) {
    let w = &app.worker;
    let color = match w.state {
        WorkerState::Running => Color::Green,
        WorkerState::Killed | WorkerState::Failed => Color::Red,
        _ => Color::Yellow,
    };
    let narrow = area.width < 76;
    let line1 = Line::from(vec![
        Span::styled(format!("{} ", w.state.label().to_uppercase()), Style::default().fg(color).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "c={} · acks {} · done {}{} · running {} · holding {}",
            w.concurrency,
            if w.acks_late { "late" } else { "early" },
            w.processed,
            if w.failed > 0 { format!(" ({} failed)", w.failed) } else { String::new() },
            w.active,
            w.unacked
        )),
    ]);
    let hint = |t: &str| Line::from(Span::styled(t.to_string(), Style::default().fg(Color::DarkGray)));
    let mut lines = vec![line1];
    match &w.last_error {
        Some(e) => lines.push(Line::from(Span::styled(e.clone(), Style::default().fg(Color::Red)))),
        None if narrow => lines.push(hint("w start · s stop · K kill · W restart · +/- · a acks")),
        None => lines.push(hint("w start · s stop · K kill · W restart · +/- concurrency · a acks")),
    }
    if narrow {
        lines.push(hint("send: h hello · A add · d divide · b/B bursts"));
    } else {
        lines.push(hint("h hello · A add · d divide · b 20×hello · B 100×add · e arguments"));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(panel(" Worker pool (this app's) ".into(), focused)), area);
}

fn draw_chart(f: &mut Frame, app: &App, area: Rect) {
    let ready = app.live.map(|l| l.ready).unwrap_or(0);
    let consumers = app.live.map(|l| l.consumers).unwrap_or(0);
    let (unacked, src) = app.unacked_now();
    let src = match src {
        FigureSource::Live => "live",
        FigureSource::Sample => "5 s sample",
    };
    // A reading that stopped coming says how old it is.
    let stale = match app.depth_at {
        Some(at) if (app.clock - at).num_seconds() >= 3 => format!(" · last reading {}", age(app.clock, at)),
        _ => String::new(),
    };
    let title =
        format!(" Queue {} · ready {ready} · unacked {unacked} ({src}) · consumers {consumers} · AMQP every 0.5 s{stale} ", app.cfg.queue);
    let block = panel(title, false);
    if app.badges.amqp == Badge::Down {
        let msg = if app.track == Track::K3s {
            "The broker does not answer on AMQP. Is RabbitMQ running and its port-forward up?"
        } else {
            "The broker does not answer on AMQP. Is RabbitMQ running? (S starts a private one)"
        };
        unavailable(f, area, block, msg);
        return;
    }
    let now = app.depth.back().map(|d| d.0).unwrap_or(0.0);
    let x0 = (now - 120.0).max(0.0);
    let recent = || app.depth.iter().filter(|d| d.0 >= x0);
    let lines = [
        ("ready", Color::Yellow, recent().map(|d| (d.0, d.1 as f64)).collect()),
        ("unacked", Color::Magenta, recent().map(|d| (d.0, d.2 as f64)).collect()),
    ];
    f.render_widget(line_chart(block, &lines, x0, now, 4.0), area);
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

fn draw_tasks(f: &mut Frame, app: &App, area: Rect, focused: bool, compact: bool) {
    // Columns by width: the narrow layout keeps id, task, args, state, total time and result.
    let full = area.width >= 100 && !compact;
    let mid = area.width >= 76 && !compact;
    let visible = app.visible_tasks();
    // Only the rows on screen are built (the table may hold 10,000).
    let height = area.height.saturating_sub(3).max(1) as usize;
    let selected = app.selected_task.min(visible.len().saturating_sub(1));
    let offset = if focused { selected.saturating_sub(height - 1) } else { 0 };
    let rows: Vec<Row> = visible
        .iter()
        .skip(offset)
        .take(height)
        .map(|i| {
            let t = &app.tasks[*i];
            let sent = t.times.get(&TaskState::Pending).or_else(|| t.times.get(&TaskState::Received));
            let started = t.times.get(&TaskState::Started);
            let done = t.times.iter().find(|(s, _)| s.is_ready() || **s == TaskState::Rejected).map(|(_, v)| v);
            let state = if t.lost {
                Span::styled("LOST", Style::default().fg(Color::Red).add_modifier(Modifier::BOLD))
            } else {
                Span::styled(t.state.as_str(), state_style(t.state))
            };
            let mut cells =
                vec![Cell::from(t.id.chars().take(8).collect::<String>()), Cell::from(t.name.trim_start_matches("tasks.").to_string())];
            if !compact {
                cells.push(Cell::from(t.args.clone()));
            }
            cells.push(Cell::from(state));
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
    let (mut widths, mut header) = if compact {
        (vec![Constraint::Length(8), Constraint::Length(6), Constraint::Length(8)], vec!["id", "task", "state"])
    } else {
        (
            vec![Constraint::Length(8), Constraint::Length(6), Constraint::Length(10), Constraint::Length(8)],
            vec!["id", "task", "args", "state"],
        )
    };
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
    let mut title = format!(" Tasks {}/{} ", visible.len(), app.tasks.len());
    if let Some(flt) = &app.task_filter {
        title.push_str(&format!("· filter \"{flt}\" "));
    }
    title.push_str(if app.follow { "· following " } else { "· f follows " });
    title.push_str("· Enter details ");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶")
        .block(panel(title, focused));
    let mut state = TableState::default();
    if focused && !visible.is_empty() {
        state.select(Some(selected - offset));
    }
    f.render_stateful_widget(table, area, &mut state);
}

/// The lines of the task detail: times, the message as sent, the stored result, the traceback.
pub fn detail_lines(app: &App, t: &TaskRow) -> Vec<Line<'static>> {
    let state = if t.lost { "LOST".to_string() } else { t.state.as_str().to_string() };
    let mut lines: Vec<Line> = vec![Line::from(format!("{}[{}] {}  {}", t.name, t.id, t.args, state).bold())];
    if let Some(w) = &t.worker {
        lines.push(Line::from(format!("  worker    {w}")));
    }
    for (s, at) in &t.times {
        lines.push(Line::from(format!("  {:<9} {}", s.as_str(), clock(app, *at))));
    }
    if t.lost {
        lines.push(Line::from(Span::styled(
            "  The worker acknowledged this message when the task started (early acks) and was killed: the broker had nothing to give back.",
            Style::default().fg(Color::Red),
        )));
    }
    if let Some(o) = &t.outcome {
        lines.push(Line::from(""));
        lines.push(Line::from("Outcome:".bold()));
        lines.push(Line::from(format!("  {o}")));
    }
    if let Some(tb) = &t.traceback {
        lines.push(Line::from(""));
        lines.push(Line::from("Traceback:".bold()));
        lines.extend(tb.lines().map(|l| Line::from(Span::styled(l.to_string(), Style::default().fg(Color::Red)))));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Message as sent (properties, headers, body):".bold()));
    match &t.raw {
        Some(raw) => {
            lines.extend(crate::celery::pyjson::to_string_pretty(raw).unwrap_or_default().lines().map(|l| Line::from(l.to_string())))
        }
        None => lines.push(Line::from("  (sent by another client: only the worker's view is known)")),
    }
    lines.push(Line::from(""));
    lines.push(Line::from(format!("Stored result (Redis key celery-task-meta-{}):", t.id).bold()));
    match &t.stored {
        Some(v) => lines.extend(crate::celery::pyjson::to_string_pretty(v).unwrap_or_default().lines().map(|l| Line::from(l.to_string()))),
        None => lines.push(Line::from("  (nothing stored yet)")),
    }
    lines
}

/// Pre-wraps lines to `width` (long JSON lines and tracebacks fold, nothing is cut).
fn fold(lines: Vec<Line<'static>>, width: u16) -> Vec<Line<'static>> {
    let w = width.max(10) as usize;
    let mut out = vec![];
    for l in lines {
        let style = l.spans.first().map(|s| s.style).unwrap_or_default().patch(l.style);
        let text = markdown::plain(&l);
        if unicode_width::UnicodeWidthStr::width(text.as_str()) <= w {
            out.push(l);
            continue;
        }
        let mut cur = String::new();
        for ch in text.chars() {
            if unicode_width::UnicodeWidthStr::width(cur.as_str()) + unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0) > w {
                out.push(Line::from(Span::styled(std::mem::take(&mut cur), style)));
                cur.push_str("  ");
            }
            cur.push(ch);
        }
        out.push(Line::from(Span::styled(cur, style)));
    }
    out
}

/// A line of shell code cut into pieces of at most `width` columns (never re-flowed by words:
/// the pieces joined are the line).
fn wrap_code(line: &str, width: usize) -> Vec<String> {
    let w = width.max(8);
    let mut out = vec![];
    let mut cur = String::new();
    for ch in line.chars() {
        if unicode_width::UnicodeWidthStr::width(cur.as_str()) + unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0) > w {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

fn scrolled_popup(f: &mut Frame, app: &mut App, i: usize, r: Rect, title: &str, lines: Vec<Line<'static>>) {
    f.render_widget(Clear, r);
    let lines = fold(lines, r.width.saturating_sub(3));
    let total = lines.len() as u16;
    let view = r.height.saturating_sub(2);
    let offset = match &mut app.modals[i] {
        Modal::Help { scroll } | Modal::Detail { scroll } | Modal::Confirm { scroll, .. } => {
            *scroll = (*scroll).min(total.saturating_sub(view));
            *scroll
        }
        Modal::Output { scroll, follow } => {
            let last = total.saturating_sub(view);
            *scroll = if *follow { last } else { (*scroll).min(last) };
            *follow = *scroll == last;
            *scroll
        }
        _ => 0,
    };
    let shown: Vec<Line> = lines.into_iter().skip(offset as usize).take(view as usize).collect();
    let title = format!(" {title} {}· Esc closes ", position(offset, view, total));
    f.render_widget(Paragraph::new(shown).block(Block::bordered().border_type(BorderType::Thick).title(title)), r);
    scrollbar(f, r, offset, view, total);
}

fn draw_detail(f: &mut Frame, app: &mut App, i: usize, area: Rect) {
    let Some(t) = app.selected().cloned() else { return };
    let r = centered(area, 90, 90);
    let lines = detail_lines(app, &t);
    scrolled_popup(f, app, i, r, "Task · ↑↓ PgUp PgDn Home End", lines);
}

/// The help overlay, from the keymap, its descriptions wrapped between words to `width`.
pub fn help_lines(width: u16) -> Vec<Line<'static>> {
    let mut lines = vec![];
    let text_w = (width as usize).saturating_sub(24).max(16);
    for b in KEYMAP {
        for (i, part) in markdown::wrap_plain(b.help, text_w).into_iter().enumerate() {
            if i == 0 {
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<13}", b.label), Style::default().fg(Color::Cyan)),
                    Span::styled(format!("{:<11}", b.scope.label()), Style::default().fg(Color::DarkGray)),
                    Span::raw(part),
                ]));
            } else {
                lines.push(Line::from(format!("{:<24}{part}", "")));
            }
        }
    }
    lines
}

fn draw_help(f: &mut Frame, app: &mut App, i: usize, area: Rect) {
    let h = (KEYMAP.len() as u16 + 2).min(area.height);
    let r = centered_fixed(area, 96.min(area.width), h);
    scrolled_popup(f, app, i, r, "Keys", help_lines(r.width.saturating_sub(3)));
}

/// First launch: what this machine has, and a track to choose with one key.
fn draw_start(f: &mut Frame, app: &App, area: Rect) {
    let r = centered_fixed(area, 84.min(area.width), 22.min(area.height));
    f.render_widget(Clear, r);
    let seen = |id: &str, what: &str| -> Line<'static> {
        let (m, c, d) = match app.checks.get(id) {
            Some(CheckState::Running) | None => (SPINNER[app.spinner % SPINNER.len()].to_string(), Color::Yellow, "looking…".to_string()),
            Some(CheckState::Done(r)) if r.status == Status::Pass => ("✓".into(), Color::Green, r.detail.clone()),
            Some(CheckState::Done(r)) => ("✗".into(), Color::Red, r.detail.clone()),
        };
        Line::from(vec![
            Span::styled(format!(" {m} "), Style::default().fg(c)),
            Span::styled(format!("{what}: "), Style::default().bold()),
            Span::raw(d),
        ])
    };
    let sb = if app.sandbox_available {
        Line::from(vec![
            Span::styled(" ✓ ", Style::default().fg(Color::Green)),
            Span::raw("rabbitmq-server and redis-server are installed: a private sandbox can start"),
        ])
    } else {
        Line::from(vec![
            Span::styled(" ✗ ", Style::default().fg(Color::Red)),
            Span::raw("rabbitmq-server / redis-server not installed (apt install rabbitmq-server redis-server)"),
        ])
    };
    let key = |k: &str, text: &str| {
        Line::from(vec![Span::styled(format!("  {k}  "), Style::default().fg(Color::Cyan).bold()), Span::raw(text.to_string())])
    };
    let mut lines = vec![
        Line::from(" Where will RabbitMQ and Redis run?".bold()),
        Line::from(""),
        Line::from(" What this machine has:"),
        seen("kube.api", "Kubernetes"),
        seen("amqp.login", "RabbitMQ"),
        seen("redis.ping", "Redis"),
        sb,
        Line::from(""),
        key("k", "k3s track: the curriculum's path, Helm charts on Rancher Desktop's K3s cluster"),
        key("l", "local track: RabbitMQ and Redis you run on this machine"),
    ];
    if app.sandbox_available {
        lines.push(key("s", "local track with a sandbox: mqlab starts a private RabbitMQ and Redis for you"));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(" Enter keeps the {} track. T switches track at any time; the choice is saved.", app.track.as_str()),
        Style::default().fg(Color::DarkGray),
    )));
    let para = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().border_type(BorderType::Thick).title(" Welcome to mqlab "));
    f.render_widget(para, r);
}

fn centered(area: Rect, pct_x: u16, pct_y: u16) -> Rect {
    let w = area.width * pct_x / 100;
    let h = area.height * pct_y / 100;
    centered_fixed(area, w, h)
}

fn centered_fixed(area: Rect, w: u16, h: u16) -> Rect {
    let x = area.x + area.width.saturating_sub(w) / 2;
    let y = area.y + area.height.saturating_sub(h) / 2;
    Rect { x, y, width: w.min(area.width), height: h.min(area.height) }
}
