//! `wasmgate new LANG NAME`: a first function in one command. Writes `NAME/`, a small
//! project from one of the templates in `templates/` (embedded in the binary): a function
//! that reads the query and a JSON body and answers JSON with a status and a header, with
//! its build script and a README that says how to install the toolchain, build and try it.
//! Every template is built and served by `tests/e2e/templates.py`, so one that rots fails
//! the tests.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry, include_dir};

/// The templates, one directory per language.
static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");
/// The wasi:http WIT the Python and JavaScript components are built against.
static HTTP_WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/modules/src/wit");

/// What stands for the project's name in a template's files.
const NAME_PLACEHOLDER: &str = "{{name}}";
/// ... and for it with `-` as `_`: the file name Cargo gives a library.
const SNAKE_PLACEHOLDER: &str = "{{name_snake}}";
/// The mode of a template's scripts.
const SCRIPT_MODE: u32 = 0o755;

/// The languages a function can be started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Go,
    C,
    Assemblyscript,
    Wat,
    RustComponent,
    Python,
    Javascript,
    RustService,
}

impl Language {
    /// Every language, in the order `wasmgate new --help` lists them.
    pub const ALL: [Language; 9] = [
        Language::Rust,
        Language::Go,
        Language::C,
        Language::Assemblyscript,
        Language::Wat,
        Language::RustComponent,
        Language::Python,
        Language::Javascript,
        Language::RustService,
    ];

    /// Its template's directory, and its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Go => "go",
            Language::C => "c",
            Language::Assemblyscript => "assemblyscript",
            Language::Wat => "wat",
            Language::RustComponent => "rust-component",
            Language::Python => "python",
            Language::Javascript => "javascript",
            Language::RustService => "rust-service",
        }
    }

    /// Whether its project carries the wasi:http WIT in `wit/`.
    fn needs_wit(self) -> bool {
        matches!(self, Language::Python | Language::Javascript)
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "'{0}' cannot name a function: start with a lowercase letter, then lowercase \
         letters, digits, '-' or '_' (at most 64), as a module name, a Cargo package and an \
         npm package all accept"
    )]
    BadName(String),
    #[error("'{0}' exists already: choose another name, or remove it")]
    Exists(String),
    #[error("there is no template for '{0}'")]
    NoTemplate(&'static str),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// Writes the `language` project for function `name` into `parent/name`; returns the
/// directory written.
pub fn new_project(language: Language, name: &str, parent: &Path) -> Result<PathBuf, NewError> {
    check_name(name)?;
    let template = TEMPLATES
        .get_dir(language.name())
        .ok_or(NewError::NoTemplate(language.name()))?;
    let root = parent.join(name);
    if root.exists() {
        return Err(NewError::Exists(name.to_string()));
    }
    let writer = Writer { root: &root, name };
    writer.dir(template, Path::new(language.name()))?;
    if language.needs_wit() {
        writer.dir(&HTTP_WIT, Path::new(""))?;
    }
    Ok(root)
}

/// A lowercase module name: what Cargo, npm and Go all take as a package name.
fn check_name(name: &str) -> Result<(), NewError> {
    let fits = name.len() <= crate::config::name::MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    match fits {
        true => Ok(()),
        false => Err(NewError::BadName(name.to_string())),
    }
}

/// Writes template files under `root`, the placeholders replaced by `name`.
struct Writer<'a> {
    root: &'a Path,
    name: &'a str,
}

impl Writer<'_> {
    /// Writes everything in `dir`, whose paths start with `prefix` (the template's own
    /// directory, which the project does not repeat; the WIT goes to `wit/`).
    fn dir(&self, dir: &Dir<'_>, prefix: &Path) -> Result<(), NewError> {
        for entry in dir.entries() {
            match entry {
                DirEntry::Dir(sub) => self.dir(sub, prefix)?,
                DirEntry::File(file) => {
                    let relative = file.path().strip_prefix(prefix).unwrap_or(file.path());
                    let relative = match prefix.as_os_str().is_empty() {
                        true => Path::new("wit").join(relative),
                        false => relative.to_path_buf(),
                    };
                    self.file(&relative, file.contents())?;
                }
            }
        }
        Ok(())
    }

    fn file(&self, relative: &Path, contents: &[u8]) -> Result<(), NewError> {
        let path = self.root.join(relative);
        let failed = |source| NewError::Write {
            path: Path::new(self.name).join(relative).display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&path, self.fill(contents)).map_err(failed)?;
        if relative.extension().is_some_and(|e| e == "sh") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SCRIPT_MODE))
                .map_err(failed)?;
        }
        Ok(())
    }

    /// `contents` with the placeholders replaced.
    fn fill(&self, contents: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(contents) {
            Ok(text) => text
                .replace(SNAKE_PLACEHOLDER, &self.name.replace('-', "_"))
                .replace(NAME_PLACEHOLDER, self.name)
                .into_bytes(),
            Err(_) => contents.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_a_template_with_a_readme_and_a_build_script() {
        for language in Language::ALL {
            let dir = TEMPLATES.get_dir(language.name());
            let dir = dir.unwrap_or_else(|| panic!("no template for {}", language.name()));
            for file in ["README.md", "build.sh"] {
                let path = Path::new(language.name()).join(file);
                assert!(dir.get_file(&path).is_some(), "{}", path.display());
            }
        }
    }

    #[test]
    fn a_project_is_written_with_its_name_and_runnable_scripts() {
        let parent = tempfile::tempdir().unwrap();
        let root = new_project(Language::Python, "my-fn", parent.path()).unwrap();
        let build = std::fs::read_to_string(root.join("build.sh")).unwrap();
        assert!(
            build.contains("-o my-fn.wasm") && !build.contains("{{"),
            "{build}"
        );
        let mode = std::fs::metadata(root.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, SCRIPT_MODE);
        assert!(root.join("wit/world.wit").is_file());
        assert!(root.join("wit/deps").is_dir());
        let again = new_project(Language::Python, "my-fn", parent.path());
        assert!(matches!(again, Err(NewError::Exists(_))));
    }

    #[test]
    fn names_that_a_package_manager_would_refuse_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        for name in ["", "Upper", "9lives", "../up", "a b", &"x".repeat(65)] {
            let made = new_project(Language::Rust, name, parent.path());
            assert!(matches!(made, Err(NewError::BadName(_))), "{name}");
        }
        let root = new_project(Language::RustComponent, "ok-name_2", parent.path()).unwrap();
        let build = std::fs::read_to_string(root.join("build.sh")).unwrap();
        assert!(
            build.contains("release/ok_name_2.wasm ok-name_2.wasm"),
            "{build}"
        );
    }
}
