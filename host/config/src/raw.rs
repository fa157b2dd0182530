//! Reading `loktar.json` with serde_json while knowing where each key and
//! value is written, so that a message can point at it.
//!
//! Values are read as [`RawValue`]s: slices of the text, so a value's place
//! in the file is its offset in the text, and it is parsed further only when
//! needed. An object is read as its members in source order, repeated keys
//! included, so that a key written twice is reported instead of silently
//! replaced.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One `"key": value` pair of an object.
#[derive(Debug)]
pub(super) struct Member<'a, V = &'a RawValue> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// The key as written, quotes included: where it is.
    pub key_written: &'a RawValue,
    /// The value.
    pub value: V,
}

/// A value of the top-level object; see [`Reader::top_level`].
#[derive(Debug)]
pub(super) enum TopValue<'a> {
    /// The value as written.
    Written(&'a RawValue),
    /// The items of the list read with the top level.
    Items(Vec<&'a RawValue>),
}

/// The top level of a text; see [`Reader::top_level`].
#[derive(Debug)]
pub(super) enum TopLevel<'a> {
    /// An object, and where it starts.
    Object { offset: usize, members: Vec<Member<'a, TopValue<'a>>> },
    /// Any other value.
    Other(&'a RawValue),
}

/// The JSON type of a value, told by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The type of a value as written.
    pub fn of(value: &RawValue) -> Kind {
        match value.get().as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::String,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    /// The type as messages name it (`a string`, `an array`…).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A value serde_json could not read, and the offset of where it starts.
#[derive(Debug)]
pub(super) struct Unreadable {
    /// Byte offset of the value being read.
    pub offset: usize,
    /// What serde_json said.
    pub error: serde_json::Error,
}

impl Unreadable {
    /// What serde_json said, without the line and column it adds: those
    /// count from the start of the value read, not of the file.
    pub fn description(&self) -> String {
        let message = self.error.to_string();
        match message.rfind(" at line ") {
            Some(end) => message[..end].to_string(),
            None => message,
        }
    }
}

/// The characters JSON allows between tokens.
const WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Reads the values of one text and says where each is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    text: &'a str,
}

impl<'a> Reader<'a> {
    /// A reader of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader { text }
    }

    /// Byte offset in the text of a value read from it.
    pub fn offset(self, value: &RawValue) -> usize {
        self.offset_of(value.get())
    }

    fn offset_of(self, part: &str) -> usize {
        part.as_ptr().addr().saturating_sub(self.text.as_ptr().addr())
    }

    /// The whole text (after a byte-order mark, if any): when it is an
    /// object, its members, and the items of its first `list` member when
    /// that is an array. The items are read in the same pass as the top
    /// level, as they are the bulk of the text, which each pass reads whole.
    pub fn top_level(self, list: &str) -> Result<TopLevel<'a>, Unreadable> {
        let json = self.text.strip_prefix('\u{feff}').unwrap_or(self.text);
        let start = json.trim_start_matches(WHITESPACE);
        let read = if start.starts_with('{') {
            let mut deserializer = serde_json::Deserializer::from_str(json);
            let members = deserializer.deserialize_map(TopLevelVisitor { reader: self, list });
            members.and_then(|members| {
                deserializer.end()?;
                Ok(TopLevel::Object { offset: self.offset_of(start), members })
            })
        } else {
            serde_json::from_str(json).map(TopLevel::Other)
        };
        read.map_err(|error| Unreadable { offset: 0, error })
    }

    /// The text of a string value, unescaped.
    pub fn text(self, value: &'a RawValue) -> Result<Cow<'a, str>, Unreadable> {
        unescaped(value).map_err(|error| Unreadable { offset: self.offset(value), error })
    }

    /// The items of an array value.
    pub fn items(self, value: &'a RawValue) -> Result<Vec<&'a RawValue>, Unreadable> {
        self.parse(value)
    }

    /// The members of an object value, in source order, repeated keys included.
    pub fn members(self, value: &'a RawValue) -> Result<Vec<Member<'a>>, Unreadable> {
        self.parse(value).map(|Object(members)| members)
    }

    /// A value parsed as `T`.
    pub fn parse<T: Deserialize<'a>>(self, value: &'a RawValue) -> Result<T, Unreadable> {
        serde_json::from_str(value.get()).map_err(|error| Unreadable { offset: self.offset(value), error })
    }

    /// Whether the value after a key (past the colon) is an array. Only
    /// blanks and the colon can stand between the two in valid JSON, and
    /// anything else fails the reading that follows.
    fn array_after(self, key: &RawValue) -> bool {
        let after = self.offset(key) + key.get().len();
        let rest = self.text.get(after..).unwrap_or_default().trim_start_matches(WHITESPACE);
        rest.strip_prefix(':').is_some_and(|value| value.trim_start_matches(WHITESPACE).starts_with('['))
    }
}

/// The text of a string as written, unescaped.
fn unescaped(written: &RawValue) -> serde_json::Result<Cow<'_, str>> {
    let quoted = written.get();
    // Most strings hold no escape: their text is what the quotes enclose.
    match quoted.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str(quoted).map(Cow::Owned),
    }
}

/// An object's members in source order; see [`Reader::members`].
struct Object<'a>(Vec<Member<'a>>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        // Package entries have around eight keys: avoid growing the vector key by key.
        let mut members = Vec::with_capacity(8);
        while let Some((key_written, value)) = map.next_entry::<&'de RawValue, &'de RawValue>()? {
            let key = unescaped(key_written).map_err(A::Error::custom)?;
            members.push(Member { key, key_written, value });
        }
        Ok(Object(members))
    }
}

/// Reads the top-level object; see [`Reader::top_level`].
struct TopLevelVisitor<'r, 'a> {
    reader: Reader<'a>,
    list: &'r str,
}

impl<'a> Visitor<'a> for TopLevelVisitor<'_, 'a> {
    type Value = Vec<Member<'a, TopValue<'a>>>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        let mut list_seen = false;
        while let Some(key_written) = map.next_key::<&'a RawValue>()? {
            let key = unescaped(key_written).map_err(A::Error::custom)?;
            let is_list = key == self.list && !std::mem::replace(&mut list_seen, true);
            let value = if is_list && self.reader.array_after(key_written) {
                TopValue::Items(map.next_value()?)
            } else {
                TopValue::Written(map.next_value()?)
            };
            members.push(Member { key, key_written, value });
        }
        Ok(members)
    }
}
