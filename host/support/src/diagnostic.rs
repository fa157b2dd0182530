//! Loktar's one kind of problem: what went wrong, where, and how to fix it.
//!
//! Every error a user can cause (a bad `loktar.json`, an unknown package, a
//! git range that cannot be resolved) becomes a [`Diagnostic`]. Several can be
//! reported at once so that one run shows every problem in a file. Host
//! services (object stores, the container engine, registries, GitHub) say
//! what failed and the fix as a `Diagnostic` too, which capabilities hand to
//! plugins as their WIT `error`; a failed plugin call carries one in the
//! runtime's `PluginError`, with the call's log.
//! Reports name what the user wrote — file names, revisions, package
//! names — so they are shown with control characters escaped.

use std::fmt;

use crate::terminal::{ERROR, HINT, PLACE, escaped, painted};

/// A place in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as it should be shown to the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", escaped(&self.file), self.line, self.column)
    }
}

/// One problem, with an optional location and an optional hint for the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Lowercase, names the failing part, values in backticks.
    pub message: String,
    /// Where the problem is, when it comes from a file.
    pub location: Option<Location>,
    /// The obvious fix, when there is one.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), location: None, hint: None }
    }

    /// Attaches a location.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Attaches a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Says what was being done: the message becomes `{context}: {message}`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Attaches a hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Renders the report, with colour when `color` is set. Message and
    /// hint are one line each: a newline in them is escaped as well.
    pub fn render(&self, color: bool) -> String {
        let mut out = format!("{}: {}", painted(color, ERROR, "error"), escaped(&self.message));
        if let Some(location) = &self.location {
            out.push_str(&format!("\n  {} {location}", painted(color, PLACE, "-->")));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  {}: {}", painted(color, HINT, "hint"), escaped(hint)));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// A list of diagnostics that together make one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// The first problem, saying how many others there are: for one line of
    /// a log or a record, where the whole list does not fit.
    pub fn into_first(self) -> Diagnostic {
        let Diagnostics(problems) = self;
        let others = problems.len().saturating_sub(1);
        match problems.into_iter().next() {
            Some(mut first) if others > 0 => {
                first.message = format!("{} (and {others} more problem(s))", first.message);
                first
            }
            Some(first) => first,
            None => Diagnostic::new("something went wrong, and nothing says what"),
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_message_and_keeps_the_rest() {
        let place = Location { file: "loktar.json".to_string(), line: 3, column: 7 };
        let diagnostic =
            Diagnostic::new("HTTP 404").at(place.clone()).hint("check the token").context("cannot read #7");
        assert_eq!(diagnostic.message, "cannot read #7: HTTP 404");
        assert_eq!((diagnostic.location, diagnostic.hint.as_deref()), (Some(place), Some("check the token")));
    }

    #[test]
    fn control_characters_in_a_report_are_escaped() {
        let diagnostic = Diagnostic::new("no package named `\u{1b}[2J` in loktar.json")
            .at(Location { file: "a\nb.json".to_string(), line: 1, column: 2 })
            .hint("did you mean `x\u{1b}]0;title\u{7}`?");
        let shown = diagnostic.render(true);
        let (error, place, hint) =
            (painted(true, ERROR, "error"), painted(true, PLACE, "-->"), painted(true, HINT, "hint"));
        assert_eq!(
            shown,
            format!(
                "{error}: no package named `\\u{{1b}}[2J` in loktar.json\n  {place} a\\nb.json:1:2\n  {hint}: did you mean `x\\u{{1b}}]0;title\\u{{7}}`?"
            )
        );
        assert!(error.starts_with("\x1b[1m") && error.ends_with("error\x1b[0m"), "{error:?}");
        // Only the three labels are coloured: without them it is the plain report.
        let plain = shown.replace(&error, "error").replace(&place, "-->").replace(&hint, "hint");
        assert_eq!(plain, diagnostic.render(false));
        assert_eq!(diagnostic.to_string().lines().count(), 3);
    }
}
