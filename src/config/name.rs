//! Module names as they appear in URLs and file names.
//!
//! A name is checked against `[A-Za-z0-9_-]{1,64}` before anything touches the filesystem or
//! the registry, so `..`, percent-escapes, NUL bytes and overlong names never reach a path.

use std::fmt;

/// The longest module name accepted.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// A validated module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ModuleName<'a>(&'a str);

/// The reason a string is not a module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("empty module name")]
    Empty,
    #[error("module name longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("module names may only contain A-Z, a-z, 0-9, '_' and '-'")]
    BadCharacter,
}

impl<'a> ModuleName<'a> {
    /// Checks `raw` (taken from a URL as received, not percent-decoded).
    pub(crate) fn parse(raw: &'a str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(NameError::BadCharacter);
        }
        Ok(ModuleName(raw))
    }

    pub(crate) fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for ModuleName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The module name a file in the modules directory serves under, if it is a module file.
pub(crate) fn from_file_name(file_name: &str) -> Option<ModuleName<'_>> {
    let stem = file_name.strip_suffix(".wasm")?;
    ModuleName::parse(stem).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["hello", "a", "A-b_9", &"x".repeat(64)] {
            assert!(ModuleName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_path_like() {
        for bad in [
            "",
            "..",
            ".",
            "a.b",
            "a/b",
            "%2f",
            "a%00b",
            "a\0b",
            "é",
            " a",
            &"x".repeat(65),
        ] {
            assert!(ModuleName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_map_to_modules() {
        assert_eq!(
            from_file_name("hello.wasm").map(|n| n.as_str()),
            Some("hello")
        );
        assert_eq!(from_file_name("hello.wasm.tmp"), None);
        assert_eq!(from_file_name(".hello.wasm"), None);
        assert_eq!(from_file_name("a b.wasm"), None);
    }
}
