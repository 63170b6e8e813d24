//! A drawn screen as an SVG picture: each cell's character with its colours, the way a terminal
//! shows it. Used for the README's pictures, drawn by the app's own drawing code.

use std::fmt::Write;

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

/// Cell size in pixels (a common monospace font at 14 px).
const CW: f64 = 8.4;
const CH: f64 = 17.0;

const BG: &str = "#1e1f29";
const FG: &str = "#e0e0e0";

/// The terminal palette the pictures use (dark background).
fn hex(c: Color, default: &'static str) -> String {
    match c {
        Color::Reset => default.to_string(),
        Color::Black => "#1e1f29".into(),
        Color::Red => "#ff5555".into(),
        Color::Green => "#50fa7b".into(),
        Color::Yellow => "#f1fa8c".into(),
        Color::Blue => "#6272f4".into(),
        Color::Magenta => "#ff79c6".into(),
        Color::Cyan => "#8be9fd".into(),
        Color::Gray => "#bfbfbf".into(),
        Color::DarkGray => "#6d7086".into(),
        Color::LightRed => "#ff6e6e".into(),
        Color::LightGreen => "#69ff94".into(),
        Color::LightYellow => "#ffffa5".into(),
        Color::LightBlue => "#8a9cff".into(),
        Color::LightMagenta => "#ff92df".into(),
        Color::LightCyan => "#a4ffff".into(),
        Color::White => "#ffffff".into(),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => format!("#{0:02x}{0:02x}{0:02x}", i),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The buffer as an SVG document, with a title for screen readers.
pub fn buffer_to_svg(buf: &Buffer, title: &str) -> String {
    let (w, h) = (buf.area.width as usize, buf.area.height as usize);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {:.0} {:.0}\" role=\"img\">\n<title>{}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"{BG}\"/>\n<g font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"14\">\n",
        w as f64 * CW,
        h as f64 * CH,
        w as f64 * CW,
        h as f64 * CH,
        escape(title)
    );
    for y in 0..h {
        // Runs of cells with the same look become one element.
        let mut x = 0;
        while x < w {
            let cell = &buf[(x as u16, y as u16)];
            let reversed = cell.modifier.contains(Modifier::REVERSED);
            let (mut fg, mut bg) = (hex(cell.fg, FG), hex(cell.bg, BG));
            if reversed {
                std::mem::swap(&mut fg, &mut bg);
            }
            let bold = cell.modifier.contains(Modifier::BOLD);
            let underline = cell.modifier.contains(Modifier::UNDERLINED);
            let start = x;
            let mut text = String::new();
            while x < w {
                let c = &buf[(x as u16, y as u16)];
                let rev = c.modifier.contains(Modifier::REVERSED);
                let (mut f2, mut b2) = (hex(c.fg, FG), hex(c.bg, BG));
                if rev {
                    std::mem::swap(&mut f2, &mut b2);
                }
                if f2 != fg
                    || b2 != bg
                    || c.modifier.contains(Modifier::BOLD) != bold
                    || c.modifier.contains(Modifier::UNDERLINED) != underline
                {
                    break;
                }
                text.push_str(c.symbol());
                x += 1;
            }
            let (px, py) = (start as f64 * CW, y as f64 * CH);
            if bg != BG {
                let _ = writeln!(
                    out,
                    "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{:.1}\" height=\"{CH:.1}\" fill=\"{bg}\"/>",
                    (x - start) as f64 * CW
                );
            }
            if !text.trim().is_empty() {
                let mut attrs = format!("fill=\"{fg}\"");
                if bold {
                    attrs.push_str(" font-weight=\"bold\"");
                }
                if underline {
                    attrs.push_str(" text-decoration=\"underline\"");
                }
                let _ = writeln!(
                    out,
                    "<text x=\"{px:.1}\" y=\"{:.1}\" {attrs} xml:space=\"preserve\" textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\">{}</text>",
                    py + CH * 0.78,
                    (x - start) as f64 * CW,
                    escape(&text)
                );
            }
        }
    }
    out.push_str("</g>\n</svg>\n");
    out
}
