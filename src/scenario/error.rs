//! Configuration errors that name the file, the line and the field.

use std::fmt;

use crate::workload::TraceError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    /// A YAML syntax or type error; serde's message carries the field path, line and column.
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    /// A value that parses but makes no sense.
    #[error("{}", Located { file, line: *line, field, message })]
    Invalid { file: String, line: Option<usize>, field: String, message: String },
    #[error(transparent)]
    Trace(#[from] TraceError),
}

impl ConfigError {
    /// A value found wrong after parsing, placed at the first line of `text` that mentions `needle`
    /// (a key, or `key: value`).
    pub fn invalid_at(
        file: &str,
        text: &str,
        needle: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_string(),
            line: super::find_line(text, needle),
            field: field.into(),
            message: message.into(),
        }
    }
}

struct Located<'a> {
    file: &'a str,
    line: Option<usize>,
    field: &'a str,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{} line {}: `{}`: {}", self.file, l, self.field, self.message),
            None => write!(f, "{}: `{}`: {}", self.file, self.field, self.message),
        }
    }
}
