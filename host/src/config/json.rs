//! A small JSON parser that remembers where every value starts.
//!
//! `serde_json` reports positions only for syntax errors; validating
//! `loktar.json` needs the line and column of every key and value so that an
//! unknown key or a wrong type deep inside a package can be pointed at.
//! Objects keep their members in source order, duplicates included, so that a
//! key written twice is reported instead of silently overwritten.

use std::borrow::Cow;
use std::fmt;

/// Nesting deeper than this is rejected rather than risking the stack.
const MAX_DEPTH: usize = 128;

/// The bytes that end a run of plain characters inside a string: the
/// closing quote, a backslash, and the control characters JSON forbids.
/// One table lookup per byte instead of three comparisons.
const ENDS_RUN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The length of the run of plain characters at the start of `bytes`: those
/// a JSON string holds as they are, up to the first quote, backslash or
/// control character ([`ENDS_RUN`]). Eight bytes at a time while eight are
/// left: keys and values are too short for memchr to pay off, yet long enough
/// for a byte at a time to be most of the parse.
pub fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte below `limit`; exact for the lowest such
    // byte, which is all that is used (a borrow can only mark bytes above it).
    let below = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS;
    let mut offset = 0;
    while let Some(chunk) = bytes[offset..].first_chunk::<8>() {
        let word = u64::from_le_bytes(*chunk);
        let ends =
            below(word, 0x20) | below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1);
        if ends != 0 {
            return offset + (ends.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    let rest = &bytes[offset..];
    offset + rest.iter().position(|&b| ENDS_RUN[usize::from(b)]).unwrap_or(rest.len())
}

/// A parsed value with the byte offset where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// Byte offset of the value's first character.
    pub offset: usize,
    /// The value itself.
    pub value: Value<'a>,
}

/// A JSON value whose children carry their own positions.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, kept as written.
    Number(&'a str),
    /// A string, unescaped; borrowed from the source unless it has escapes.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Node<'a>>),
    /// An object, members in source order.
    Object(Vec<Member<'a>>),
}

/// One `"key": value` pair of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    /// Byte offset of the key's opening quote.
    pub key_offset: usize,
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// The value.
    pub value: Node<'a>,
}

impl Value<'_> {
    /// The JSON type name used in error messages (`a string`, `an array`…).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl Node<'_> {
    /// Writes the value as compact JSON with object keys sorted, so that two
    /// values that mean the same compare equal regardless of formatting.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        write_canonical(&self.value, &mut out);
        out
    }
}

fn write_canonical(value: &Value<'_>, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => out.push_str(&serde_json::Value::from(s.as_ref()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(&item.value, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<&Member<'_>> = members.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            out.push('{');
            for (i, member) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(member.key.as_ref()).to_string());
                out.push(':');
                write_canonical(&member.value.value, out);
            }
            out.push('}');
        }
    }
}

/// A syntax error and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the offending character (or the end of input).
    pub offset: usize,
    /// What was wrong, lowercase.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses a complete JSON document.
pub fn parse(source: &str) -> Result<Node<'_>, SyntaxError> {
    Parser::new(source).document(None)
}

/// Parses a document and hands each item of the top-level array `key` to
/// `on_item` to read, instead of keeping it in the tree: the returned tree
/// has that array empty. A large `loktar.json` is then validated package by
/// package, most of them without building a tree at all (see [`Item`]).
pub fn parse_streaming<'a>(
    source: &'a str,
    key: &str,
    on_item: &mut dyn FnMut(Item<'_, 'a>) -> Result<(), SyntaxError>,
) -> Result<Node<'a>, SyntaxError> {
    Parser::new(source).document(Some((key, on_item)))
}

/// One item of a streamed array. The receiver reads it either plainly, piece
/// by piece and without building a tree, for as long as it holds only what
/// the receiver expects; or whole, as a [`Node`], with [`Item::node`], which
/// starts again from the item's beginning whatever was read plainly before.
/// It must do one or the other completely.
#[derive(Debug)]
pub struct Item<'p, 'a> {
    parser: &'p mut Parser<'a>,
    start: usize,
    depth: usize,
    keys_read: usize,
}

/// What [`Item`]'s plain reading returns when the item is not what the
/// receiver expected there (or not valid JSON): read it with [`Item::node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlain;

impl<'a> Item<'_, 'a> {
    /// Byte offset of the item's first character.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// The next key of the object the item is, or `None` after its last
    /// member; the value is read next. Keys must be free of escapes, and an
    /// empty object is not plain.
    pub fn next_key(&mut self) -> Result<Option<&'a str>, NotPlain> {
        let parser = &mut *self.parser;
        parser.skip_whitespace();
        match (parser.peek(), self.keys_read) {
            (Some(b'{'), 0) | (Some(b','), 1..) => parser.pos += 1,
            (Some(b'}'), 1..) => {
                parser.pos += 1;
                return Ok(None);
            }
            _ => return Err(NotPlain),
        }
        parser.skip_whitespace();
        let (key, _) = parser.plain_string().ok_or(NotPlain)?;
        parser.skip_whitespace();
        if parser.peek() != Some(b':') {
            return Err(NotPlain);
        }
        parser.pos += 1;
        parser.skip_whitespace();
        self.keys_read += 1;
        Ok(Some(key))
    }

    /// Whether the next value is a string.
    pub fn at_string(&self) -> bool {
        self.parser.peek() == Some(b'"')
    }

    /// The next value, a string free of escapes, and the offset of its opening quote.
    pub fn string(&mut self) -> Result<(&'a str, usize), NotPlain> {
        self.parser.plain_string().ok_or(NotPlain)
    }

    /// The next value, an array of strings free of escapes: hands each to
    /// `each` with the offset of its opening quote.
    pub fn strings(&mut self, mut each: impl FnMut(&'a str, usize)) -> Result<(), NotPlain> {
        let parser = &mut *self.parser;
        if parser.peek() != Some(b'[') {
            return Err(NotPlain);
        }
        parser.pos += 1;
        parser.skip_whitespace();
        if parser.peek() == Some(b']') {
            parser.pos += 1;
            return Ok(());
        }
        loop {
            let (text, offset) = parser.plain_string().ok_or(NotPlain)?;
            each(text, offset);
            parser.skip_whitespace();
            match parser.peek() {
                Some(b',') => parser.pos += 1,
                Some(b']') => {
                    parser.pos += 1;
                    return Ok(());
                }
                _ => return Err(NotPlain),
            }
            parser.skip_whitespace();
        }
    }

    /// The next value, whatever it is, as a tree.
    pub fn value(&mut self) -> Result<Node<'a>, NotPlain> {
        self.parser.value(self.depth + 1).map_err(|_| NotPlain)
    }

    /// The whole item as a tree, read from its beginning.
    pub fn node(self) -> Result<Node<'a>, SyntaxError> {
        self.parser.pos = self.start;
        self.parser.value(self.depth)
    }
}

/// Converts byte offsets into 1-based line and column numbers.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the line starts of `source`.
    pub fn new(source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(source.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = source.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line + 1, column)
    }
}

/// Receives the items of one top-level array; see [`parse_streaming`].
type Stream<'s, 'a> = (&'s str, &'s mut dyn FnMut(Item<'_, 'a>) -> Result<(), SyntaxError>);

#[derive(Debug)]
struct Parser<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { src: text.as_bytes(), text, pos: 0 }
    }

    fn document(mut self, stream: Option<Stream<'_, 'a>>) -> Result<Node<'a>, SyntaxError> {
        self.skip_whitespace();
        if self.pos == 0 && self.text.starts_with('\u{feff}') {
            self.pos = 3;
            self.skip_whitespace();
        }
        let node = match stream {
            Some(stream) if self.peek() == Some(b'{') => {
                Node { offset: self.pos, value: self.object(0, Some(stream))? }
            }
            _ => self.value(0)?,
        };
        self.skip_whitespace();
        if self.pos < self.src.len() {
            return Err(self.error("unexpected content after the end of the document"));
        }
        Ok(node)
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError { offset: self.pos, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn describe_next(&self) -> String {
        match self.text.get(self.pos..).and_then(|rest| rest.chars().next()) {
            None => "the end of the file".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("values are nested more than {MAX_DEPTH} levels deep")));
        }
        let offset = self.pos;
        let value = match self.peek() {
            Some(b'{') => self.object(depth, None)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => {
                return Err(self.error(format!("expected a value, found {}", self.describe_next())));
            }
        };
        Ok(Node { offset, value })
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, SyntaxError> {
        if self.src[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(format!("expected a value, found {}", self.describe_next())))
        }
    }

    fn number(&mut self) -> Result<Value<'a>, SyntaxError> {
        let start = self.pos;
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
        Ok(Value::Number(&self.text[start..self.pos]))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        let mut out: Option<String> = None;
        loop {
            let run_start = self.pos;
            self.pos += plain_run(&self.src[run_start..]);
            let run = &self.text[run_start..self.pos];
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(match out {
                        None => Cow::Borrowed(run),
                        Some(mut owned) => {
                            owned.push_str(run);
                            Cow::Owned(owned)
                        }
                    });
                }
                Some(b'\\') => {
                    let owned = out.get_or_insert_with(String::new);
                    owned.push_str(run);
                    self.pos += 1;
                    self.escape(owned)?;
                }
                Some(_) => {
                    return Err(self.error("control characters must be escaped inside strings"));
                }
                None => {
                    return Err(SyntaxError { offset: open, message: "this string is never closed".to_string() });
                }
            }
        }
    }

    /// A string free of escapes, and the offset of its opening quote; `None`
    /// (with the position unchanged) for anything else.
    fn plain_string(&mut self) -> Option<(&'a str, usize)> {
        let open = self.pos;
        if self.peek() != Some(b'"') {
            return None;
        }
        let end = open + 1 + plain_run(&self.src[open + 1..]);
        if self.src.get(end) != Some(&b'"') {
            return None;
        }
        let text = self.text.get(open + 1..end)?;
        self.pos = end + 1;
        Some((text, open))
    }

    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unfinished escape sequence"));
        };
        self.pos += 1;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let first = self.hex4()?;
                let ch = if (0xD800..0xDC00).contains(&first) {
                    if !self.src[self.pos..].starts_with(b"\\u") {
                        return Err(self.error("a high surrogate must be followed by a low surrogate"));
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.error("invalid low surrogate"));
                    }
                    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                } else {
                    char::from_u32(first)
                };
                match ch {
                    Some(ch) => out.push(ch),
                    None => return Err(self.error("invalid unicode escape")),
                }
            }
            _ => {
                // Point at the backslash that starts the bad sequence.
                self.pos -= 2;
                return Err(self.error(format!("invalid escape sequence `\\{}`", c as char)));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.error("expected four hex digits"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| self.error("expected four hex digits"))?;
        self.pos += 4;
        Ok(value)
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, SyntaxError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            if self.after_item(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// The top-level array whose items go to `on_item`; returns it empty.
    fn streamed_array(
        &mut self,
        on_item: &mut dyn FnMut(Item<'_, 'a>) -> Result<(), SyntaxError>,
    ) -> Result<Node<'a>, SyntaxError> {
        let offset = self.pos;
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node { offset, value: Value::Array(Vec::new()) });
        }
        loop {
            self.skip_whitespace();
            on_item(Item { start: self.pos, parser: self, depth: 2, keys_read: 0 })?;
            if self.after_item(b']')? {
                return Ok(Node { offset, value: Value::Array(Vec::new()) });
            }
        }
    }

    /// An object; the array under the `stream` key, if any, goes to the stream.
    fn object(&mut self, depth: usize, mut stream: Option<Stream<'_, 'a>>) -> Result<Value<'a>, SyntaxError> {
        self.pos += 1;
        // Package entries have around eight keys: avoid growing the vector key by key.
        let mut members = Vec::with_capacity(8);
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error(format!("expected a key in double quotes, found {}", self.describe_next())));
            }
            let key_offset = self.pos;
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error(format!("expected `:` after the key, found {}", self.describe_next())));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = match stream.as_mut() {
                Some((streamed, on_item)) if key == *streamed && self.peek() == Some(b'[') => {
                    self.streamed_array(&mut **on_item)?
                }
                _ => self.value(depth + 1)?,
            };
            members.push(Member { key_offset, key, value });
            if self.after_item(b'}')? {
                return Ok(Value::Object(members));
            }
        }
    }

    /// After an item of an array or object: `,` (another item follows) or
    /// the closing bracket. Returns whether the list is closed.
    fn after_item(&mut self, close: u8) -> Result<bool, SyntaxError> {
        self.skip_whitespace();
        let close_char = close as char;
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(close) {
                    return Err(self.error(format!("trailing comma before `{close_char}`")));
                }
                Ok(false)
            }
            Some(found) if found == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.error(format!("expected `,` or `{close_char}`, found {}", self.describe_next()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (usize, usize, String) {
        let e = parse(src).expect_err("should fail");
        let (line, col) = LineIndex::new(src).position(src, e.offset);
        (line, col, e.message)
    }

    #[test]
    fn parses_nested_values_with_offsets() {
        let src = "{\"a\": [1, -2.5e3, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": null, \"d\": true}}";
        let node = parse(src).expect("valid");
        let Value::Object(members) = &node.value else { panic!("object") };
        assert_eq!(members[0].key, "a");
        let Value::Array(items) = &members[0].value.value else { panic!("array") };
        assert_eq!(items[1].value, Value::Number("-2.5e3"));
        assert_eq!(items[2].value, Value::String("xé😀".into()));
        assert_eq!(&src[items[2].offset..items[2].offset + 1], "\"");
        assert_eq!(node.canonical(), r#"{"a":[1,-2.5e3,"xé😀"],"b":{"c":null,"d":true}}"#);
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let node = parse(r#"{"k": 1, "k": 2}"#).expect("valid");
        let Value::Object(members) = node.value else { panic!("object") };
        assert_eq!(members.len(), 2);
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
    }

    #[test]
    fn strings_end_at_quotes_and_reject_raw_control_characters() {
        let node = parse("[\"a\\\"b\", \"\u{7f}é\\\\\", \"\"]").expect("valid");
        let Value::Array(items) = node.value else { panic!("array") };
        let texts: Vec<_> = items.into_iter().map(|item| item.value).collect();
        assert_eq!(texts, [Value::String("a\"b".into()), Value::String("\u{7f}é\\".into()), Value::String("".into())]);
        for control in ["\u{0}", "\t", "\n", "\u{1f}"] {
            let message = err(&format!("\"a{control}b\"")).2;
            assert_eq!(message, "control characters must be escaped inside strings", "{control:?}");
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control_character() {
        for length in 0..20 {
            let plain: String = "é-x".chars().cycle().take(length).collect();
            for end in ["\"", "\\", "\n", "\u{0}", "\u{1f}"] {
                let text = format!("{plain}{end}\"tail\\");
                assert_eq!(plain_run(text.as_bytes()), plain.len(), "{text:?}");
            }
            assert_eq!(plain_run(plain.as_bytes()), plain.len());
        }
        // Bytes just past the ends, and multi-byte characters, are plain.
        assert_eq!(plain_run("!#[]^~\u{7f}€😀 !#".as_bytes()), "!#[]^~\u{7f}€😀 !#".len());
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing() {
        let src = "[".repeat(100_000);
        assert!(err(&src).2.contains("nested more than"));
    }

    #[test]
    fn never_panics_on_truncated_input() {
        let src = r#"{"packages": [{"pkg_name": "a\u00e9", "x": [1.5e-3, true, null]}]}"#;
        for end in 0..src.len() {
            if let Some(prefix) = src.get(..end) {
                assert!(parse(prefix).is_err(), "prefix {prefix:?} should not parse");
            }
        }
        assert!(parse(src).is_ok());
    }
}
