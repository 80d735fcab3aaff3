//! The shell commands a markdown document shows, read from the document so
//! that a test runs them as written and the document cannot drift from
//! what the code does. Shared by the doc-command tests of several crates
//! (`#[path]`-included), each one level below the workspace root, and by
//! the CLI's troubleshooting-guide test, for [`wildcard_matches`].
//!
//! A command is a `$ ` line of a `console` block (the lines up to the next
//! `$ ` are the output it quotes) or a line of a `sh`/`bash` block (no
//! quoted output); a trailing `\` joins the next line. Quoted output is
//! compared by [`same_line`]: every run of letters and digits that holds a
//! digit (times, ids, counts, versions) stands for any such run, runs of
//! spaces are one, and `…` stands for any text ([`wildcard_matches`]; the
//! troubleshooting guide's quotes use only `…`, everything else exact).
#![allow(dead_code)]

use std::path::PathBuf;

/// One command a document shows.
#[derive(Debug, Clone)]
pub(crate) struct DocCommand {
    /// The document, relative to the workspace root.
    pub(crate) doc: String,
    /// The line of the document the command starts on (1-based).
    pub(crate) line: usize,
    /// The command's text, continuation lines joined.
    pub(crate) text: String,
    /// The lines a `console` block quotes after the command.
    pub(crate) output: Vec<String>,
}

/// The workspace root (every crate of the workspace sits one level below it).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every command of the document at `doc` (relative to the workspace root).
pub(crate) fn commands(doc: &str) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(root().join(doc))
        .unwrap_or_else(|e| panic!("cannot read {doc}: {e}"));
    parse(doc, &text)
}

/// The commands of a markdown text (see the module's documentation).
pub(crate) fn parse(doc: &str, text: &str) -> Vec<DocCommand> {
    let mut found: Vec<DocCommand> = Vec::new();
    let mut lang: Option<String> = None;
    let mut continued = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if let Some(fence) = line.strip_prefix("```") {
            lang = match lang {
                Some(_) => None,
                None => Some(fence.trim().to_owned()),
            };
            continued = false;
            continue;
        }
        let Some(kind) = lang.as_deref() else {
            continue;
        };
        if continued {
            let last = found.last_mut().expect("a command to continue");
            last.text.push(' ');
            last.text.push_str(line.trim_end_matches('\\').trim());
            continued = line.ends_with('\\');
            continue;
        }
        let command = match kind {
            "console" => line.strip_prefix("$ "),
            "sh" | "bash" | "shell" if !line.is_empty() && !line.starts_with('#') => Some(line),
            _ => None,
        };
        match command {
            Some(command) => {
                continued = command.ends_with('\\');
                found.push(DocCommand {
                    doc: doc.to_owned(),
                    line: i + 1,
                    text: command.trim_end_matches('\\').trim().to_owned(),
                    output: Vec::new(),
                });
            }
            None if kind == "console" => {
                if let Some(last) = found.last_mut().filter(|c| c.doc == doc) {
                    last.output.push(raw.to_owned());
                }
            }
            None => {}
        }
    }
    found
}

/// The command's words, without a trailing `# comment`.
pub(crate) fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in command.split_whitespace() {
        if word.starts_with('#') {
            break;
        }
        out.push(word.to_owned());
    }
    out
}

/// A line as compared: runs of spaces become one, and every run of
/// letters and digits that holds a digit (a time, an id, a count, a
/// version, with its sign and decimals) becomes `#`, so that the rest of a
/// word still counts (`"status":"healthy"` after a number in JSON).
pub(crate) fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.chars().any(|c| c.is_ascii_digit()) {
            // A minus sign that starts a word belongs to the number.
            if out.ends_with('-') && out[..out.len() - 1].chars().last().is_none_or(|c| c == ' ') {
                out.pop();
            }
            // 3.48 and 3 are both one number.
            if out.ends_with("#.") {
                out.pop();
            } else {
                out.push('#');
            }
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            if c.is_alphanumeric() || c == '_' {
                token.push(c);
            } else {
                flush(&mut token, &mut out);
                out.push(c);
            }
        }
        flush(&mut token, &mut out);
    }
    out
}

/// Does `actual` print what the document quotes as `quoted`? Both are
/// normalized, then compared by [`wildcard_matches`].
pub(crate) fn same_line(quoted: &str, actual: &str) -> bool {
    wildcard_matches(&normalize(quoted), &normalize(actual))
}

/// Does `actual` match `pattern` exactly, where each `…` in `pattern`
/// stands for any text (none included)? The pieces between wildcards must
/// appear in order and may not overlap: `ab…ba` does not match `aba`.
pub(crate) fn wildcard_matches(pattern: &str, actual: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('…').collect();
    if pieces.len() == 1 {
        return actual == pattern;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if actual.len() < first.len() + last.len()
        || !actual.starts_with(first)
        || !actual.ends_with(last)
    {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Panics unless every quoted line appears, in order, among `actual`.
pub(crate) fn assert_quoted(command: &DocCommand, actual: &str) {
    let mut lines = actual.lines();
    for quoted in &command.output {
        assert!(
            lines.any(|l| same_line(quoted, l)),
            "{}:{}: `{}` does not print the quoted line\n{quoted}\nit printed\n{actual}",
            command.doc,
            command.line,
            command.text
        );
    }
}
