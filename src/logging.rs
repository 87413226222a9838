//! The gateway's log, where one concern is settled once: no string a module, a request or
//! a registry controls can forge a line.
//!
//! Such strings reach the log by many routes: what a guest logs, a module's name section
//! in a trap's backtrace, a registry's media type in an error, a request's path. Escaping
//! at each call misses the next route (issue 30 found two), so escaping happens where
//! every event is written: [`Escaping`] wraps the log's writer and escapes each control
//! character of a formatted event (C0, DEL and C1, which some terminals also obey) but
//! its final newline, whatever the format. The escapes (`\n`, `\r`, `\u001b`) are valid
//! inside a JSON string too, so a JSON line stays JSON; tabs pass as they are. ANSI colors
//! are escape sequences like any other, so the text format has none.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// `text` with every control character but the tab escaped: `\n`, `\r`, `\u001b`.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => escaped.push(c),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// A log writer that escapes what it is given (one formatted event per write) with
/// [`escape_controls`], keeping one final newline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, event: &[u8]) -> io::Result<usize> {
        let body = event.strip_suffix(b"\n").unwrap_or(event);
        if body.iter().all(|&b| b >= 0x20 && b != 0x7f && b != 0xc2) {
            // Nothing to escape (C1 controls start with 0xc2 in UTF-8): no copy.
            self.0.write_all(event)?;
            return Ok(event.len());
        }
        let text = String::from_utf8_lossy(event);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let line = format!("{}{newline}", escape_controls(body));
        self.0.write_all(line.as_bytes())?;
        Ok(event.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The standard error stream, escaped: what the binary logs to.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedStderr;

impl<'a> MakeWriter<'a> for EscapedStderr {
    type Writer = Escaping<io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(io::stderr().lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line_of_their_own() {
        assert_eq!(
            escape_controls("plain text\twith a tab"),
            "plain text\twith a tab"
        );
        let forged = "ok\n2026-12-01T00:00:00Z  INFO wasmgate: module loaded\r\x1b[2K\u{9b}";
        let escaped = escape_controls(forged);
        assert!(
            !escaped.contains(['\n', '\r', '\x1b', '\u{9b}']),
            "{escaped}"
        );
        assert!(
            escaped.contains("\\n2026") && escaped.contains("\\r\\u001b[2K\\u009b"),
            "{escaped}"
        );
    }

    #[test]
    fn an_event_keeps_its_final_newline_only() {
        let mut out = Escaping(Vec::new());
        out.write_all(b"INFO one\nINFO two\x1b]0;title\x07\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "INFO one\\nINFO two\\u001b]0;title\\u0007\n"
        );
    }

    #[test]
    fn a_json_line_stays_json() {
        let event = serde_json::json!({"fields": {"media_type": "x\u{9b}31m\u{2028}"}});
        let mut out = Escaping(Vec::new());
        writeln!(out, "{event}").unwrap();
        let line = String::from_utf8(out.0).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(parsed, event);
        assert!(!line.contains('\u{9b}'));
    }
}
