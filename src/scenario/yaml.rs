//! YAML reading shared by every config file (scenarios, policy configs): one error that names the
//! file, the full field path, and the line.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::ConfigError;

/// A config file's text, kept so that errors found after parsing can name their line.
pub struct ConfigText {
    pub file: String,
    pub text: String,
}

impl ConfigText {
    pub fn read(path: &Path) -> Result<ConfigText, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { file: file.clone(), message: e.to_string() })?;
        Ok(ConfigText { file, text })
    }

    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        parse_yaml(&self.text, &self.file)
    }

    /// An error about `field`, at the first line that mentions it.
    pub fn invalid(&self, field: &str, message: String) -> ConfigError {
        ConfigError::invalid_at(&self.file, &self.text, field, field, message)
    }

    /// [`Self::invalid`] for a field whose name is not in the text as written (a nested one such
    /// as `reward_weights.slo`), located at the first line holding `needle`.
    pub fn invalid_near(&self, needle: &str, field: &str, message: String) -> ConfigError {
        ConfigError::invalid_at(&self.file, &self.text, needle, field, message)
    }
}

/// Parses `text` (from `file`) into `T`, refusing what `T` refuses (unknown fields included).
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| yaml_error(e, file))
}

/// Parses every `---`-separated document of `text` into a `T`.
pub fn parse_yaml_documents<T: DeserializeOwned>(text: &str, file: &str) -> Result<Vec<T>, ConfigError> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde_path_to_error::deserialize(doc).map_err(|e| yaml_error(e, file)))
        .collect()
}

fn yaml_error(e: serde_path_to_error::Error<serde_yaml_ng::Error>, file: &str) -> ConfigError {
    // serde_path_to_error adds the full field path (`workload.stages[1].rps`) that serde_yaml's own
    // message lacks inside flow mappings; serde_yaml's message carries the line and column.
    {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_yaml prefixes the part of the path it knows; keep one, complete path.
        let inner = match inner.split_once(": ") {
            Some((p, rest)) if !p.contains(' ') && path.starts_with(p) => rest.to_string(),
            _ => inner,
        };
        let message = if path.is_empty() || path == "." { inner } else { format!("`{path}`: {inner}") };
        ConfigError::Yaml { file: file.to_string(), message }
    }
}

/// 1-based number of the first line containing `needle` (also with the value quoted), for errors
/// found after parsing, when serde's location is gone.
pub fn find_line(text: &str, needle: &str) -> Option<usize> {
    let quoted = needle.split_once(": ").map(|(k, v)| (format!("{k}: \"{v}\""), format!("{k}: '{v}'")));
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.contains(needle) || quoted.as_ref().is_some_and(|(a, b)| l.contains(a.as_str()) || l.contains(b.as_str()))
        })
        .map(|i| i + 1)
}
