//! Debian control files: parsed from `DEBIAN/control` or built from
//! `build_info.control`, checked for the fields `dpkg-deb` needs, written back.

use loktar_sdk::prelude::Error;

/// Fields a binary package's control file must have.
const REQUIRED: [&str; 5] = ["Package", "Version", "Architecture", "Maintainer", "Description"];

/// The fields of a control file, in order; values keep their continuation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    fields: Vec<(String, String)>,
}

impl Control {
    /// Parses `text`, written in `file` (for messages).
    pub fn parse(text: &str, file: &str) -> Result<Control, Error> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    return Err(broken(file, number, "a continuation line before any field"));
                };
                value.push('\n');
                value.push_str(line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(broken(file, number, &format!("`{line}` is not `Field: value`")));
            };
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(broken(file, number, &format!("`{name}` is not a field name")));
            }
            fields.push((name.to_string(), value.trim().to_string()));
        }
        Control::checked(fields, file)
    }

    /// Builds a control file from `build_info.control`, a JSON object of strings.
    pub fn from_settings(object: &serde_json::Map<String, serde_json::Value>) -> Result<Control, Error> {
        let mut fields = Vec::new();
        for (name, value) in object {
            let Some(value) = value.as_str() else {
                return Err(Error::new(format!("`build_info.control.{name}` must be a string")));
            };
            fields.push((name.clone(), value.trim().to_string()));
        }
        Control::checked(fields, "build_info.control")
    }

    fn checked(fields: Vec<(String, String)>, file: &str) -> Result<Control, Error> {
        let control = Control { fields };
        let missing: Vec<&str> =
            REQUIRED.iter().copied().filter(|f| control.get(f).is_none_or(str::is_empty)).collect();
        if !missing.is_empty() {
            return Err(Error::new(format!("`{file}` lacks {}", missing.join(", ")))
                .with_hint(format!("a Debian package needs {}", REQUIRED.join(", "))));
        }
        if let Some(version) = control.get("Version")
            && !valid_version(version)
        {
            return Err(Error::new(format!("`{file}`: `{version}` is not a Debian version"))
                .with_hint("a version starts with a digit and uses letters, digits and `.+~-:` only"));
        }
        Ok(control)
    }

    /// The value of `name` (field names are case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Replaces the value of `name`.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(field, _)| field.eq_ignore_ascii_case(name)) {
            Some((_, old)) => *old = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    /// The file as `dpkg-deb` reads it.
    pub fn render(&self) -> String {
        self.fields.iter().map(|(name, value)| format!("{name}: {value}\n")).collect()
    }
}

fn broken(file: &str, index: usize, what: &str) -> Error {
    Error::new(format!("`{file}` line {}: {what}", index + 1))
        .with_hint("a control file is `Field: value` lines; continuation lines start with a space")
}

/// Debian policy 5.6.12, loosely: optional epoch, upstream version starting with a digit.
fn valid_version(version: &str) -> bool {
    let upstream = version
        .split_once(':')
        .map_or(version, |(epoch, rest)| if epoch.chars().all(|c| c.is_ascii_digit()) { rest } else { "" });
    upstream.starts_with(|c: char| c.is_ascii_digit())
        && upstream.chars().all(|c| c.is_ascii_alphanumeric() || ".+~-:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "Package: hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: A <a@b>\nDescription: says hi\n more text\n";

    #[test]
    fn parses_checks_and_renders() {
        let mut control = Control::parse(GOOD, "DEBIAN/control").expect("valid");
        assert_eq!(control.get("description"), Some("says hi\n more text"));
        control.set("Version", "1.0-1+feature.x.1a2b3c4d");
        assert!(control.render().contains("Version: 1.0-1+feature.x.1a2b3c4d\n"));
        assert!(control.render().ends_with("Description: says hi\n more text\n"));
    }

    #[test]
    fn broken_files_say_what_and_where() {
        let error = Control::parse("Package hello\n", "DEBIAN/control").expect_err("no colon");
        assert_eq!(error.message, "`DEBIAN/control` line 1: `Package hello` is not `Field: value`");
        let error = Control::parse("Package: hello\nVersion: 1.0\n", "DEBIAN/control").expect_err("missing");
        assert_eq!(error.message, "`DEBIAN/control` lacks Architecture, Maintainer, Description");
        let error = Control::parse(&GOOD.replace("1.0-1", "v1_0"), "c").expect_err("bad version");
        assert_eq!(error.message, "`c`: `v1_0` is not a Debian version");
    }
}
