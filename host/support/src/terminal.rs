//! Text from outside Loktar as a terminal may show it.
//!
//! Names and paths come from git, `loktar.json`, plugins and the programs
//! they run; a file named `\e[2J` would clear the screen, `\e]0;…\a` would
//! set the window's title, and a newline would split a line of the plan in
//! two. Text output writes each such value through [`escaped`]; JSON output
//! keeps it exact, as JSON escapes it already.
//!
//! Colour is written with [`anstyle`] styles through [`painted`].

use std::borrow::Cow;
use std::path::Path;

use anstyle::{AnsiColor, Style};

/// Timestamps.
pub const DIM: Style = Style::new().dimmed();
/// Failures.
pub const RED: Style = AnsiColor::Red.on_default();
/// Passes.
pub const GREEN: Style = AnsiColor::Green.on_default();
/// Cancellations and skips.
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
/// The live footer.
pub const CYAN: Style = AnsiColor::Cyan.on_default();
/// `error` before a diagnostic.
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
/// The `-->` before a diagnostic's place in a file.
pub const PLACE: Style = AnsiColor::Blue.on_default().bold();
/// `hint` before a diagnostic's fix.
pub const HINT: Style = AnsiColor::Cyan.on_default().bold();

/// `text` with each control character (C0, DEL and C1) written as Rust's
/// `char::escape_debug` writes it — `\n`, `\t`, `\u{1b}` — and everything
/// else, other Unicode and backslashes included, as it is.
pub fn escaped(text: &str) -> Cow<'_, str> {
    // A control character is below 0x20, 0x7f, or 0xc2 0x80–0x9f in UTF-8:
    // a byte scan finds that most text has none and can be shown as it is.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return Cow::Borrowed(text);
    }
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` in `style` (then reset) when `color` is set, else `text` as it is.
pub fn painted(color: bool, style: Style, text: &str) -> String {
    if color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
}

/// A path as people should see it: relative to the current folder when
/// inside it, control characters escaped.
pub fn shown_path(path: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok())
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or(path)
        .display()
        .to_string();
    escaped(&shown).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{CYAN, DIM, RED, escaped, painted};

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escaped("\u{1b}[2Jclear"), "\\u{1b}[2Jclear");
        assert_eq!(escaped("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(escaped("\nrest_services/pet_api/x"), "\\nrest_services/pet_api/x");
        assert_eq!(escaped("tab\there\r\0"), "tab\\there\\r\\0");
        assert_eq!(escaped("del\u{7f} csi\u{9b}"), "del\\u{7f} csi\\u{9b}");
        for plain in ["rest_services/pet_api/app.py", "çà 日本語 😀 ©", "back\\slash \"quoted\"", ""] {
            assert!(matches!(escaped(plain), std::borrow::Cow::Borrowed(_)), "{plain}");
            assert_eq!(escaped(plain), plain);
        }
    }

    #[test]
    fn escaped_text_holds_no_control_character() {
        let all: String = (0u32..0x110000).filter_map(char::from_u32).filter(|c| c.is_control()).collect();
        let shown = escaped(&all);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown.matches('\\').count(), all.chars().count());
    }

    #[test]
    fn painting_writes_the_ansi_codes_only_with_colour() {
        assert_eq!(painted(true, DIM, "12:00:00"), "\x1b[2m12:00:00\x1b[0m");
        assert_eq!(painted(true, CYAN, "x"), "\x1b[36mx\x1b[0m");
        assert_eq!(painted(false, RED, "✗"), "✗");
    }
}
