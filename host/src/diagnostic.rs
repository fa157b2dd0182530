//! User-facing error reports: what went wrong, where, and how to fix it.
//!
//! Every error a user can cause (a bad `loktar.json`, an unknown package, a
//! git range that cannot be resolved) becomes a [`Diagnostic`]. Several can be
//! reported at once so that one run shows every problem in a file.

use std::fmt;

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
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
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

    /// Attaches a hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Renders the report, with colour when `color` is set.
    pub fn render(&self, color: bool) -> String {
        let (red, blue, cyan, reset) =
            if color { ("\x1b[1;31m", "\x1b[1;34m", "\x1b[1;36m", "\x1b[0m") } else { ("", "", "", "") };
        let mut out = format!("{red}error{reset}: {}", self.message);
        if let Some(location) = &self.location {
            out.push_str(&format!("\n  {blue}-->{reset} {location}"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  {cyan}hint{reset}: {hint}"));
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

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}
