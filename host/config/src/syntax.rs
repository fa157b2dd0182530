//! Says what makes a text invalid JSON, and where, once reading it has
//! found a problem.
//!
//! Hand-written because serde_json's syntax errors cannot be shown as they
//! are — they name neither the bracket a comma stands before nor the
//! character found, count columns in bytes, and place an unclosed string at
//! the end of the file — and because it skips the values it is not asked to
//! read without checking their depth or escapes.

/// Nesting deeper than this is invalid (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// A syntax error and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    /// Byte offset of the offending character (or the end of the text).
    pub offset: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// The first syntax error of `text`, if it is not valid JSON.
pub(super) fn first_error(text: &str) -> Option<SyntaxError> {
    Walk { text, pos: 0 }.document().err()
}

/// A position in the text, moved forward over one value after another.
struct Walk<'a> {
    text: &'a str,
    pos: usize,
}

impl Walk<'_> {
    fn document(&mut self) -> Result<(), SyntaxError> {
        if self.text.starts_with('\u{feff}') {
            self.pos = '\u{feff}'.len_utf8();
        }
        self.skip_whitespace();
        self.value(0)?;
        self.skip_whitespace();
        if self.pos < self.text.len() {
            return Err(self.error("unexpected content after the end of the document"));
        }
        Ok(())
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError { offset: self.pos, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The next character, as messages show it.
    fn next_shown(&self) -> String {
        match self.text.get(self.pos..).and_then(|rest| rest.chars().next()) {
            None => "the end of the file".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("values are nested more than {MAX_DEPTH} levels deep")));
        }
        match self.peek() {
            Some(b'{') => self.items(depth, b'}'),
            Some(b'[') => self.items(depth, b']'),
            Some(b'"') => self.string(),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error(format!("expected a value, found {}", self.next_shown()))),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), SyntaxError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.error(format!("expected a value, found {}", self.next_shown())));
        }
        self.pos += word.len();
        Ok(())
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit in the number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<(), SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape()?;
                }
                Some(0..0x20) => return Err(self.error("control characters must be escaped inside strings")),
                Some(_) => self.pos += 1,
                None => return Err(SyntaxError { offset: open, message: "this string is never closed".to_string() }),
            }
        }
    }

    /// The escape sequence after a backslash.
    fn escape(&mut self) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
            Some(b'u') => {
                self.pos += 1;
                let first = self.hex4()?;
                if (0xD800..0xDC00).contains(&first) {
                    if !self.text[self.pos..].starts_with("\\u") {
                        return Err(self.error("a high surrogate must be followed by a low surrogate"));
                    }
                    self.pos += 2;
                    if !(0xDC00..0xE000).contains(&self.hex4()?) {
                        return Err(self.error("invalid low surrogate"));
                    }
                } else if (0xDC00..0xE000).contains(&first) {
                    return Err(self.error("invalid unicode escape"));
                }
            }
            Some(_) => {
                // Point at the backslash that starts the bad sequence.
                self.pos -= 1;
                let shown: String = self.text[self.pos..].chars().take(2).collect();
                return Err(self.error(format!("invalid escape sequence `{shown}`")));
            }
            None => return Err(self.error("unfinished escape sequence")),
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self.text.get(self.pos..self.pos + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let value = digits.and_then(|digits| u32::from_str_radix(digits, 16).ok());
        let value = value.ok_or_else(|| self.error("expected four hex digits"))?;
        self.pos += 4;
        Ok(value)
    }

    /// An array or an object: items separated by commas up to `close`; an
    /// object's items are `"key": value`.
    fn items(&mut self, depth: usize, close: u8) -> Result<(), SyntaxError> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            if close == b'}' {
                self.key()?;
            }
            self.value(depth + 1)?;
            self.skip_whitespace();
            let close_char = close as char;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(close) {
                        return Err(self.error(format!("trailing comma before `{close_char}`")));
                    }
                }
                Some(found) if found == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error(format!("expected `,` or `{close_char}`, found {}", self.next_shown()))),
            }
        }
    }

    /// An object's key and the colon after it.
    fn key(&mut self) -> Result<(), SyntaxError> {
        if self.peek() != Some(b'"') {
            return Err(self.error(format!("expected a key in double quotes, found {}", self.next_shown())));
        }
        self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error(format!("expected `:` after the key, found {}", self.next_shown())));
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;

    fn err(text: &str) -> (usize, usize, String) {
        let error = first_error(text).expect("should fail");
        let location = SourceFile::new("loktar.json", text.to_string()).location(error.offset);
        (location.line, location.column, error.message)
    }

    #[test]
    fn reports_positions_of_syntax_errors() {
        assert_eq!(err("{\n  \"a\": 1,\n}"), (3, 1, "trailing comma before `}`".into()));
        assert_eq!(err("{\"a\" 1}"), (1, 6, "expected `:` after the key, found `1`".into()));
        assert_eq!(err("[1 2]"), (1, 4, "expected `,` or `]`, found `2`".into()));
        assert_eq!(err("{\"é\": x}"), (1, 7, "expected a value, found `x`".into()));
        assert_eq!(err("\"abc"), (1, 1, "this string is never closed".into()));
        assert_eq!(err("{} {}"), (1, 4, "unexpected content after the end of the document".into()));
        assert_eq!(err(""), (1, 1, "expected a value, found the end of the file".into()));
        assert_eq!(err("[01]"), (1, 3, "expected `,` or `]`, found `1`".into()));
        assert_eq!(err("\"\\x\""), (1, 2, "invalid escape sequence `\\x`".into()));
        assert_eq!(err("\"\\u12\""), (1, 4, "expected four hex digits".into()));
        assert_eq!(err("{1: 2}"), (1, 2, "expected a key in double quotes, found `1`".into()));
        assert_eq!(err("[\"\\ud800\"]"), (1, 9, "a high surrogate must be followed by a low surrogate".into()));
        assert_eq!(err("[\"\\udc00\"]"), (1, 9, "invalid unicode escape".into()));
    }

    #[test]
    fn strings_reject_raw_control_characters() {
        for control in ["\u{0}", "\t", "\n", "\u{1f}"] {
            let message = err(&format!("\"a{control}b\"")).2;
            assert_eq!(message, "control characters must be escaped inside strings", "{control:?}");
        }
        assert_eq!(first_error("[\"a\\\"b\", \"\u{7f}é\\\\\", \"\"]"), None);
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing() {
        let src = "[".repeat(100_000);
        assert!(err(&src).2.contains("nested more than"));
        let deepest = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(first_error(&deepest), None);
    }

    #[test]
    fn accepts_what_serde_json_accepts_and_nothing_it_rejects() {
        let valid = r#"{"packages": [{"pkg_name": "a\u00e9\ud83d\ude00", "x": [1.5e-3, -0, true, null, {}]}]}"#;
        assert_eq!(first_error(valid), None);
        assert_eq!(first_error(&format!("\u{feff} {valid}")), None);
        for end in 0..valid.len() {
            if let Some(prefix) = valid.get(..end) {
                assert!(first_error(prefix).is_some(), "prefix {prefix:?} should not parse");
                assert!(serde_json::from_str::<serde_json::Value>(prefix).is_err(), "{prefix:?}");
            }
        }
    }
}
