//! Lesson Markdown to terminal lines, wrapped here (not by the widget) so that prose breaks only
//! between words, lists keep a hanging indent, tables fit their columns, and code blocks are
//! never re-wrapped: a line wider than the panel is clipped with a marker and can be scrolled
//! sideways.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// What a rendered line is, so callers (and tests) can tell prose from code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prose,
    Heading,
    Code,
    Table,
    Blank,
    Rule,
}

#[derive(Clone, Debug)]
pub struct MdLine {
    pub line: Line<'static>,
    pub kind: Kind,
    /// A code line cut at the right edge (more to see with →).
    pub clipped: bool,
    /// Full display width of a code line (for sideways scrolling).
    pub code_width: usize,
}

pub fn code_style() -> Style {
    Style::default().fg(Color::LightYellow)
}

/// A word: pieces of text with their styles, no whitespace inside.
type Word = Vec<(String, Style)>;

struct Block {
    /// Prefix of the first line and of the following ones (list bullets, quote bars).
    first: Vec<(String, Style)>,
    rest: Vec<(String, Style)>,
}

struct Renderer {
    width: usize,
    hscroll: usize,
    out: Vec<MdLine>,
    styles: Vec<Style>,
    words: Vec<Word>,
    /// The current word is being built (no whitespace seen since its last piece).
    open_word: bool,
    /// Paragraph-level style (headings).
    heading: Option<HeadingLevel>,
    lists: Vec<Option<u64>>,
    /// Pending bullet for the next text of a list item.
    bullet: Option<String>,
    quote: usize,
    code: Option<(String, String)>,
    link: Option<String>,
    table: Option<Table>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    cell: String,
    row: Vec<String>,
    header_rows: usize,
    in_head: bool,
}

/// Renders `md` for a panel `width` columns wide, with code blocks shifted left by `hscroll`.
pub fn render(md: &str, width: u16, hscroll: usize) -> Vec<MdLine> {
    let width = (width as usize).max(10);
    let mut r = Renderer {
        width,
        hscroll,
        out: vec![],
        styles: vec![Style::default()],
        words: vec![],
        open_word: false,
        heading: None,
        lists: vec![],
        bullet: None,
        quote: 0,
        code: None,
        link: None,
        table: None,
    };
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for ev in Parser::new_ext(md, opts) {
        r.event(ev);
    }
    r.flush();
    while r.out.last().is_some_and(|l| l.kind == Kind::Blank) {
        r.out.pop();
    }
    r.out
}

impl Renderer {
    fn style(&self) -> Style {
        *self.styles.last().unwrap_or(&Style::default())
    }

    fn push_style(&mut self, f: impl FnOnce(Style) -> Style) {
        let s = f(self.style());
        self.styles.push(s);
    }

    fn blank(&mut self) {
        if !self.out.is_empty() && self.out.last().is_some_and(|l| l.kind != Kind::Blank) {
            self.out.push(MdLine { line: Line::from(""), kind: Kind::Blank, clipped: false, code_width: 0 });
        }
    }

    fn prefix(&mut self) -> Block {
        let mut first = vec![];
        let mut rest = vec![];
        let bar = Style::default().fg(Color::DarkGray);
        for _ in 0..self.quote {
            first.push(("│ ".to_string(), bar));
            rest.push(("│ ".to_string(), bar));
        }
        if !self.lists.is_empty() {
            let depth = self.lists.len() - 1;
            let indent = "  ".repeat(depth);
            match self.bullet.take() {
                Some(b) => {
                    let w = b.width();
                    first.push((format!("{indent}{b}"), Style::default().fg(Color::Cyan)));
                    rest.push((format!("{indent}{}", " ".repeat(w)), Style::default()));
                }
                None => {
                    let w = self.bullet_width();
                    first.push((format!("{indent}{}", " ".repeat(w)), Style::default()));
                    rest.push((format!("{indent}{}", " ".repeat(w)), Style::default()));
                }
            }
        }
        Block { first, rest }
    }

    fn bullet_width(&self) -> usize {
        match self.lists.last() {
            Some(Some(n)) => format!("{n}. ").width(),
            _ => 2,
        }
    }

    fn text(&mut self, t: &str) {
        if let Some(tb) = &mut self.table {
            tb.cell.push_str(t);
            return;
        }
        let style = self.style();
        for (i, part) in t.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.open_word = false;
            }
            if part.is_empty() {
                continue;
            }
            if self.open_word
                && let Some(w) = self.words.last_mut()
            {
                w.push((part.to_string(), style));
            } else {
                self.words.push(vec![(part.to_string(), style)]);
            }
            self.open_word = true;
        }
    }

    fn space(&mut self) {
        self.open_word = false;
    }

    /// Wraps the collected words into lines.
    fn flush(&mut self) {
        if self.words.is_empty() {
            return;
        }
        let words = std::mem::take(&mut self.words);
        self.open_word = false;
        let block = self.prefix();
        let kind = if self.heading.is_some() { Kind::Heading } else { Kind::Prose };
        let mut line: Vec<Span<'static>> = block.first.iter().map(|(t, s)| Span::styled(t.clone(), *s)).collect();
        let mut used: usize = block.first.iter().map(|(t, _)| t.width()).sum();
        let rest_w: usize = block.rest.iter().map(|(t, _)| t.width()).sum();
        let mut empty = true;
        for word in words {
            let ww: usize = word.iter().map(|(t, _)| t.width()).sum();
            if !empty && used + 1 + ww > self.width {
                self.out.push(MdLine { line: Line::from(std::mem::take(&mut line)), kind, clipped: false, code_width: 0 });
                line = block.rest.iter().map(|(t, s)| Span::styled(t.clone(), *s)).collect();
                used = rest_w;
                empty = true;
            }
            if !empty {
                line.push(Span::raw(" "));
                used += 1;
            }
            // A single word wider than the whole line is broken (nothing else can be done).
            for (t, s) in word {
                let mut piece = String::new();
                for ch in t.chars() {
                    let cw = ch.width().unwrap_or(0);
                    if used + cw > self.width && used > rest_w {
                        line.push(Span::styled(std::mem::take(&mut piece), s));
                        self.out.push(MdLine { line: Line::from(std::mem::take(&mut line)), kind, clipped: false, code_width: 0 });
                        line = block.rest.iter().map(|(t, s)| Span::styled(t.clone(), *s)).collect();
                        used = rest_w;
                    }
                    piece.push(ch);
                    used += cw;
                }
                line.push(Span::styled(piece, s));
            }
            empty = false;
        }
        if !line.is_empty() {
            self.out.push(MdLine { line: Line::from(line), kind, clipped: false, code_width: 0 });
        }
    }

    fn code_line(&mut self, text: &str) {
        let block = self.prefix();
        let pre: String = block.first.iter().map(|(t, _)| t.as_str()).collect::<String>() + "  ";
        let avail = self.width.saturating_sub(pre.width()).max(4);
        let full = text.replace('\t', "    ");
        let code_width = full.width();
        let mut skipped = 0;
        let visible: String = full
            .chars()
            .skip_while(|ch| {
                let skip = skipped < self.hscroll;
                if skip {
                    skipped += ch.width().unwrap_or(0).max(1);
                }
                skip
            })
            .collect();
        let mut shown = String::new();
        let clipped = visible.width() > avail;
        if clipped {
            let mut w = 0;
            for ch in visible.chars() {
                let cw = ch.width().unwrap_or(0);
                if w + cw > avail - 1 {
                    break;
                }
                shown.push(ch);
                w += cw;
            }
        } else {
            shown = visible;
        }
        let mut spans = vec![Span::styled(pre, Style::default().fg(Color::DarkGray))];
        if self.hscroll > 0 && code_width > 0 {
            spans.push(Span::styled("‹", Style::default().fg(Color::DarkGray)));
        }
        spans.push(Span::styled(shown, code_style()));
        if clipped {
            spans.push(Span::styled("›", Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)));
        }
        self.out.push(MdLine { line: Line::from(spans), kind: Kind::Code, clipped, code_width });
    }

    fn table_done(&mut self) {
        let Some(tb) = self.table.take() else { return };
        let cols = tb.rows.iter().map(Vec::len).max().unwrap_or(0);
        if cols == 0 {
            return;
        }
        let block = self.prefix();
        let pre: String = block.rest.iter().map(|(t, _)| t.as_str()).collect();
        let avail = self.width.saturating_sub(pre.width() + 3 * (cols - 1)).max(cols * 3);
        let mut widths: Vec<usize> =
            (0..cols).map(|c| tb.rows.iter().filter_map(|r| r.get(c)).map(|t| t.trim().width()).max().unwrap_or(1).max(1)).collect();
        // Shrink the widest column until the table fits; cells then wrap between words.
        while widths.iter().sum::<usize>() > avail {
            let (i, _) = widths.iter().enumerate().max_by_key(|(_, w)| **w).unwrap();
            if widths[i] <= 6 {
                break;
            }
            widths[i] -= 1;
        }
        let sep = Style::default().fg(Color::DarkGray);
        for (ri, row) in tb.rows.iter().enumerate() {
            let cells: Vec<Vec<String>> = (0..cols).map(|c| wrap_plain(row.get(c).map(|s| s.trim()).unwrap_or(""), widths[c])).collect();
            let height = cells.iter().map(Vec::len).max().unwrap_or(1);
            let head = ri < tb.header_rows;
            for li in 0..height {
                let mut spans = vec![Span::raw(pre.clone())];
                for (c, cell) in cells.iter().enumerate() {
                    if c > 0 {
                        spans.push(Span::styled(" │ ", sep));
                    }
                    let t = cell.get(li).cloned().unwrap_or_default();
                    let pad = widths[c].saturating_sub(t.width());
                    let style = if head { Style::default().add_modifier(Modifier::BOLD) } else { Style::default() };
                    spans.push(Span::styled(format!("{t}{}", " ".repeat(pad)), style));
                }
                self.out.push(MdLine { line: Line::from(spans), kind: Kind::Table, clipped: false, code_width: 0 });
            }
            if head && ri + 1 == tb.header_rows {
                let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
                self.out.push(MdLine {
                    line: Line::from(Span::styled(format!("{pre}{}", rule.join("─┼─")), sep)),
                    kind: Kind::Table,
                    clipped: false,
                    code_width: 0,
                });
            }
        }
        self.blank();
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if let Some((_, buf)) = &mut self.code {
                    buf.push_str(&t);
                } else {
                    self.text(&t);
                }
            }
            Event::Code(t) => {
                if let Some(tb) = &mut self.table {
                    tb.cell.push_str(&t);
                } else {
                    self.push_style(|_| code_style());
                    // Inline code keeps its spaces; it may still wrap between its words.
                    self.text(&t);
                    self.styles.pop();
                }
            }
            Event::SoftBreak => {
                if let Some(tb) = &mut self.table {
                    tb.cell.push(' ');
                } else {
                    self.space();
                }
            }
            Event::HardBreak => self.flush(),
            Event::Rule => {
                self.flush();
                self.blank();
                let w = self.width.min(40);
                self.out.push(MdLine {
                    line: Line::from(Span::styled("─".repeat(w), Style::default().fg(Color::DarkGray))),
                    kind: Kind::Rule,
                    clipped: false,
                    code_width: 0,
                });
                self.blank();
            }
            Event::TaskListMarker(done) => self.text(if done { "[x]" } else { "[ ]" }),
            Event::Html(h) | Event::InlineHtml(h) => {
                // Comments are for lesson authors only.
                if !h.trim_start().starts_with("<!--") {
                    self.text(&h);
                }
            }
            Event::FootnoteReference(t) | Event::InlineMath(t) | Event::DisplayMath(t) => self.text(&t),
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { level, .. } => {
                self.flush();
                self.blank();
                self.heading = Some(level);
                let style = match level {
                    HeadingLevel::H1 => Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                    HeadingLevel::H2 => Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                    _ => Style::default().add_modifier(Modifier::BOLD),
                };
                self.styles.push(style);
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote += 1;
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                let lang = match kind {
                    CodeBlockKind::Fenced(l) => l.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                self.flush();
                if self.lists.is_empty() {
                    self.blank();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let b = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let s = format!("{n}. ");
                        *n += 1;
                        s
                    }
                    _ => "• ".to_string(),
                };
                self.bullet = Some(b);
            }
            Tag::Emphasis => self.push_style(|s| s.add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.push_style(|s| s.add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => self.push_style(|s| s.add_modifier(Modifier::CROSSED_OUT)),
            Tag::Link { dest_url, .. } => {
                self.link = Some(dest_url.to_string());
                self.push_style(|s| s.fg(Color::Blue).add_modifier(Modifier::UNDERLINED));
            }
            Tag::Image { dest_url, .. } => {
                self.link = Some(dest_url.to_string());
                self.push_style(|s| s.add_modifier(Modifier::ITALIC));
            }
            Tag::Table(_) => {
                self.flush();
                self.blank();
                self.table = Some(Table::default());
            }
            Tag::TableHead => {
                if let Some(t) = &mut self.table {
                    t.in_head = true;
                }
            }
            Tag::TableRow | Tag::TableCell => {}
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::Heading(_) => {
                self.flush();
                self.heading = None;
                self.styles.pop();
                self.blank();
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote = self.quote.saturating_sub(1);
                self.blank();
            }
            TagEnd::CodeBlock => {
                if let Some((lang, buf)) = self.code.take() {
                    if self.lists.is_empty() {
                        self.blank();
                    }
                    for l in buf.trim_end_matches('\n').split('\n') {
                        self.code_line(l);
                    }
                    if lang.split_whitespace().skip(1).any(|w| w == "run") {
                        let pre: String = self.prefix().first.iter().map(|(t, _)| t.as_str()).collect::<String>() + "  ";
                        let note = format!("{pre}↳ ! to run or copy it");
                        self.out.push(MdLine {
                            line: Line::from(Span::styled(note, Style::default().fg(Color::DarkGray))),
                            kind: Kind::Prose,
                            clipped: false,
                            code_width: 0,
                        });
                    }
                    self.blank();
                }
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::Item => self.flush(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                self.styles.pop();
                if let Some(url) = self.link.take() {
                    let shown: String = self.words.last().map(|w| w.iter().map(|(t, _)| t.as_str()).collect()).unwrap_or_default();
                    if !url.starts_with('#') && shown != url {
                        self.space();
                        self.push_style(|_| Style::default().fg(Color::DarkGray));
                        let shown_url = shorten_url(&url, self.width.saturating_sub(8));
                        self.text(&format!("({shown_url})"));
                        self.styles.pop();
                    }
                }
            }
            TagEnd::TableCell => {
                if let Some(t) = &mut self.table {
                    let c = std::mem::take(&mut t.cell);
                    t.row.push(c);
                }
            }
            TagEnd::TableHead => {
                if let Some(t) = &mut self.table {
                    let r = std::mem::take(&mut t.row);
                    t.rows.push(r);
                    t.header_rows = t.rows.len();
                    t.in_head = false;
                }
            }
            TagEnd::TableRow => {
                if let Some(t) = &mut self.table {
                    let r = std::mem::take(&mut t.row);
                    t.rows.push(r);
                }
            }
            TagEnd::Table => self.table_done(),
            _ => {}
        }
    }
}

/// A URL that fits `max` columns: scheme dropped, then the middle of the path elided
/// (`docs.example.org/…/page.html#part`), never cut mid-way without a marker.
pub fn shorten_url(url: &str, max: usize) -> String {
    if url.width() <= max {
        return url.to_string();
    }
    let bare = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    if bare.width() <= max {
        return bare.to_string();
    }
    let (host, path) = bare.split_once('/').unwrap_or((bare, ""));
    let last = path.rsplit('/').next().unwrap_or("");
    let short = format!("{host}/…/{last}");
    if short.width() <= max {
        return short;
    }
    let last = last.split('#').next().unwrap_or(last);
    let short = format!("{host}/…/{last}");
    if short.width() <= max { short } else { format!("{host}/…") }
}

/// Wraps plain text between words to `width` columns (a longer word is broken).
pub fn wrap_plain(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![];
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let ww = word.width();
        if !cur.is_empty() && cur.width() + 1 + ww > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        if ww > width {
            for ch in word.chars() {
                if cur.width() + ch.width().unwrap_or(0) > width {
                    lines.push(std::mem::take(&mut cur));
                }
                cur.push(ch);
            }
        } else {
            cur.push_str(word);
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// The plain text of a line.
pub fn plain(line: &Line) -> String {
    line.spans.iter().map(|s| s.content.as_ref()).collect()
}
