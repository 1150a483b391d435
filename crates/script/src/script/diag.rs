//! Load errors and warnings: each names the file, line, column and field path, the way an
//! operator finds the mistake (`actualization.toml:42:7: nodes.question.on.manager_cal: …`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What kind of problem a [`Diagnostic`] reports; tests and tools branch on it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiagnosticKind {
    /// The file could not be read (or is not UTF-8).
    Io,
    /// Not valid TOML (includes a key written twice in one table).
    Syntax,
    /// Valid TOML of the wrong shape: unknown field, missing field, wrong type, unknown section.
    Shape,
    /// A reference to a node that is not declared.
    UnknownNode,
    /// A reference to a prompt that is not declared.
    UnknownPrompt,
    /// A reference to a category that is not declared.
    UnknownCategory,
    /// A language code other than `ru`, `uk`, `en`.
    UnknownLanguage,
    /// Two `[[category]]` entries with the same id.
    DuplicateCategory,
    /// One DTMF key given to two categories (or twice to one).
    DuplicateKey,
    /// Not a DTMF key (`0`–`9`, `*`, `#`, `A`–`D`).
    BadKey,
    /// A prompt WAV that does not exist (resolved relative to the script file).
    MissingPromptFile,
    /// A prompt without a file for one of the script's declared languages.
    MissingPromptLanguage,
    /// A duration that cannot be read, is not positive, or is over its limit.
    BadDuration,
    /// Any other value out of range or inconsistent (threshold, retries, transfer target, …).
    BadValue,
    /// A category a gather accepts with no node to go to.
    NoRoute,
    /// A loop of nodes that never waits for an answer (no gather in it).
    Cycle,
    /// Warning: a node no path from `start` (or a global key) reaches.
    Unreachable,
    /// Warning: a prompt no node plays.
    UnusedPrompt,
    /// Warning: a category with phrases in some declared languages but not in this one.
    MissingPhrases,
}

/// One error or warning in a script file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The script file as the caller named it.
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place in the file (e.g. it could not be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Field path such as `nodes.question.on.manager_call` or `category[2].keys[0]`; may be empty.
    pub path: String,
    pub kind: DiagnosticKind,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a script file: all errors found (not only the first), sorted by
/// position, plus the warnings. `Display` prints one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptErrors {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl ScriptErrors {
    /// Whether any error is of `kind`.
    pub fn has(&self, kind: DiagnosticKind) -> bool {
        self.errors.iter().any(|e| e.kind == kind)
    }

    pub(crate) fn io(file: &Path, message: String) -> ScriptErrors {
        ScriptErrors {
            errors: vec![Diagnostic {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                path: String::new(),
                kind: DiagnosticKind::Io,
                message,
            }],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ScriptErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScriptErrors {}

/// Collects diagnostics for one file, turning byte spans into line and column.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    file: &'a Path,
    src: &'a str,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Sink<'a> {
        Sink {
            file,
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn make(
        &self,
        kind: DiagnosticKind,
        span: Option<Range<usize>>,
        path: &str,
        message: String,
    ) -> Diagnostic {
        let (line, column) = match span {
            Some(s) => line_col(self.src, s.start),
            None => (0, 0),
        };
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            path: path.to_owned(),
            kind,
            message,
        }
    }

    pub fn error(
        &mut self,
        kind: DiagnosticKind,
        span: Option<Range<usize>>,
        path: &str,
        message: impl Into<String>,
    ) {
        let d = self.make(kind, span, path, message.into());
        self.errors.push(d);
    }

    pub fn warn(
        &mut self,
        kind: DiagnosticKind,
        span: Option<Range<usize>>,
        path: &str,
        message: impl Into<String>,
    ) {
        let d = self.make(kind, span, path, message.into());
        self.warnings.push(d);
    }

    /// Errors and warnings in file order.
    pub fn finish(mut self) -> ScriptErrors {
        let key = |d: &Diagnostic| (d.line, d.column);
        self.errors.sort_by_key(key);
        self.warnings.sort_by_key(key);
        ScriptErrors {
            errors: self.errors,
            warnings: self.warnings,
        }
    }
}

/// 1-based line and character column of byte `offset` in `src`.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = src[line_start..offset].chars().count() + 1;
    (line, column)
}

/// A TOML key as it appears in a field path: bare when it can be, quoted otherwise.
pub(crate) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// `base.key`, quoting the key if it needs it.
pub(crate) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key_segment(key)
    } else {
        format!("{base}.{}", key_segment(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "a = 1\nбв = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 4), (1, 5));
        // "бв" is four bytes; the `=` after it is the fourth character of line 2.
        let eq = src.find("= \"").unwrap();
        assert_eq!(line_col(src, eq), (2, 4));
        // Past the end and inside a character never panic.
        assert_eq!(line_col(src, 1000).0, 3);
        assert_eq!(line_col(src, 7), (2, 1));
    }

    #[test]
    fn display_forms() {
        let d = Diagnostic {
            file: "a.toml".into(),
            line: 3,
            column: 7,
            path: "nodes.q".into(),
            kind: DiagnosticKind::UnknownNode,
            message: "unknown node \"x\"".into(),
        };
        assert_eq!(d.to_string(), "a.toml:3:7: nodes.q: unknown node \"x\"");
        let io = ScriptErrors::io(Path::new("b.toml"), "cannot read: gone".into());
        assert_eq!(io.to_string(), "b.toml: cannot read: gone");
        assert_eq!(join("nodes", "a b"), "nodes.\"a b\"");
    }
}
