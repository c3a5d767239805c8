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
    check_shape(text, file)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| yaml_error(e, file))
}

/// Parses every `---`-separated document of `text` into a `T`.
pub fn parse_yaml_documents<T: DeserializeOwned>(text: &str, file: &str) -> Result<Vec<T>, ConfigError> {
    check_shape(text, file)?;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde_path_to_error::deserialize(doc).map_err(|e| yaml_error(e, file)))
        .collect()
}

/// Deepest nesting a config file may have. The bundled files nest at most 8 levels; the YAML parser
/// takes time quadratic in the depth (100 KB of 50,000 nested `[` took 39 s to be refused), so a
/// deeper file is refused before it is parsed.
pub const MAX_DEPTH: usize = 100;

/// Refuses an empty file and one nested deeper than [`MAX_DEPTH`], before parsing.
fn check_shape(text: &str, file: &str) -> Result<(), ConfigError> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---") {
        return Err(ConfigError::Yaml { file: file.to_string(), message: "the file is empty".into() });
    }
    if let Some(line) = too_deep(text) {
        return Err(ConfigError::Yaml {
            file: file.to_string(),
            message: format!("line {line}: nested more than {MAX_DEPTH} levels deep; no config needs that"),
        });
    }
    Ok(())
}

/// The first line at which `text` is nested deeper than [`MAX_DEPTH`], counting flow brackets
/// (`[`, `{`) outside quotes and comments, block sequence dashes and indentation (two spaces a
/// level). An over-estimate where plain scalars hold brackets, which is harmless at this bound.
fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let mut dashes = 0usize;
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix('-').filter(|r| r.is_empty())) {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in rest.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' if prev == ' ' || prev == '\t' => break,
                    '[' | '{' => {
                        flow += 1;
                        if flow + dashes + indent / 2 > MAX_DEPTH {
                            return Some(i + 1);
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        if flow + dashes + indent / 2 > MAX_DEPTH {
            return Some(i + 1);
        }
    }
    None
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
        ConfigError::Yaml { file: file.to_string(), message: super::clip_message(&message) }
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
