//! Configuration errors: always one line, naming the key path (`service[0].rs[1].addr`) and
//! the problem, because the daemon prints them as its exit reason.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {}", .path.display(), io_reason(.source))]
    Read { path: PathBuf, source: io::Error },
    /// TOML syntax, a value of the wrong type or an unknown key. `key` is the key path when it
    /// could be located (it cannot for pure syntax errors).
    #[error("{}line {line}: {message}", key_prefix(.key))]
    Syntax {
        key: Option<String>,
        line: usize,
        message: String,
    },
    /// A well-formed file with a wrong value.
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
    /// Any of the above, in the named file.
    #[error("{}: {source}", .path.display())]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

impl ConfigError {
    /// A validation error at `key`.
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The error without the file name wrapper (what tests and callers match on).
    pub fn inner(&self) -> &ConfigError {
        match self {
            ConfigError::InFile { source, .. } => source.inner(),
            other => other,
        }
    }

    /// Turns toml's multi-line error into one line, locating the key path from the span.
    pub(super) fn from_toml(src: &str, err: &toml::de::Error) -> Self {
        let message = one_line(err.message());
        let Some(span) = err.span() else {
            return ConfigError::Syntax {
                key: None,
                line: 1,
                message,
            };
        };
        let line = src
            .get(..span.start)
            .map_or(1, |s| s.matches('\n').count() + 1);
        let key = key_at(src, span.start);
        ConfigError::Syntax { key, line, message }
    }
}

/// The OS's text without Rust's ` (os error N)` suffix.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// Collapses line breaks, a lone `\r` included (toml's messages quote the file's keys).
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The key path (`service[0].rs[1].weight`) whose key or value covers byte `pos`, found by
/// re-parsing the document with spans. `None` when the document does not parse (a syntax
/// error) or no key covers `pos`.
fn key_at(src: &str, pos: usize) -> Option<String> {
    let doc = DeTable::parse(src).ok()?;
    let mut path = Vec::new();
    find_in_table(doc.get_ref(), pos, &mut path).then(|| path.concat())
}

fn covers(span: Range<usize>, pos: usize) -> bool {
    span.contains(&pos)
}

/// Depth-first search for `pos`; on success `path` holds the segments (`.key` / `[i]`).
fn find_in_table(table: &DeTable<'_>, pos: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        let sep = if path.is_empty() { "" } else { "." };
        path.push(format!("{sep}{}", path_key(key.get_ref())));
        if covers(key.span(), pos) || find_in_value(value.get_ref(), value.span(), pos, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// A key as a dotted path shows it: bare when TOML allows it bare, else quoted with its
/// escapes, so that the path stays one line whatever the key holds.
fn path_key(key: &str) -> String {
    let bare = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare && !key.is_empty() {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Tables and arrays are searched inside first, since their own span may be just a header.
fn find_in_value(
    value: &DeValue<'_>,
    span: Range<usize>,
    pos: usize,
    path: &mut Vec<String>,
) -> bool {
    match value {
        DeValue::Table(t) if find_in_table(t, pos, path) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if find_in_value(item.get_ref(), item.span(), pos, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    covers(span, pos)
}
