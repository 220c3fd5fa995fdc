//! Secrets (bearer tokens, the cluster secret) as every binary takes them: from a file or the
//! environment, where `ps` cannot show them, never shorter than [`MIN_SECRET_LEN`], and never
//! printed by `Debug`.

use std::fmt;
use std::path::Path;

/// The shortest secret any binary accepts. Generated tokens are 68 characters.
pub const MIN_SECRET_LEN: usize = 16;

/// A secret value. `Debug` prints its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} chars)", self.0.len())
    }
}

/// Why a secret was refused; the message names where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {reason}")]
pub struct SecretError {
    /// The flag, file or variable the secret came from.
    pub source_name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Secret {
    /// Checks a secret given directly; `source_name` names its origin in errors.
    pub fn new(value: &str, source_name: &str) -> Result<Secret, SecretError> {
        let err = |reason: String| SecretError {
            source_name: source_name.to_string(),
            reason,
        };
        let value = value.trim();
        if value.len() < MIN_SECRET_LEN {
            return Err(err(format!(
                "shorter than {MIN_SECRET_LEN} characters (generate one with `openssl rand -hex 32`)"
            )));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("must be visible ASCII characters without spaces".into()));
        }
        Ok(Secret(value.to_string()))
    }

    /// Reads a secret from a file (surrounding whitespace, such as a final newline, ignored).
    pub fn from_file(path: &Path, flag: &str) -> Result<Secret, SecretError> {
        let name = format!("{flag} {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| SecretError {
            source_name: name.clone(),
            reason: e.to_string(),
        })?;
        Secret::new(&text, &name)
    }

    /// The one secret given by a value (a flag or a variable, named `value_name`) or a file
    /// (flag `file_flag`), if any; both at once is an error.
    pub fn one_of(
        value: Option<&str>,
        value_name: &str,
        file: Option<&Path>,
        file_flag: &str,
    ) -> Result<Option<Secret>, SecretError> {
        match (value, file) {
            (Some(_), Some(_)) => Err(SecretError {
                source_name: file_flag.to_string(),
                reason: format!("give either {value_name} or {file_flag}, not both"),
            }),
            (Some(v), None) => Secret::new(v, value_name).map(Some),
            (None, Some(f)) => Secret::from_file(f, file_flag).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_spaced_or_doubled_secrets_are_refused_with_their_source() {
        let e = Secret::new("short", "TIERCEL_TOKEN").unwrap_err();
        assert_eq!(e.source_name, "TIERCEL_TOKEN");
        assert!(e.to_string().starts_with("TIERCEL_TOKEN: shorter than 16"));
        assert!(Secret::new("0123456789abcdef xyz", "x").is_err());
        let ok = Secret::new("  0123456789abcdef\n", "x").unwrap();
        assert_eq!(ok.expose(), "0123456789abcdef");
        assert_eq!(format!("{ok:?}"), "Secret(16 chars)");
        let e = Secret::one_of(
            Some("0123456789abcdef"),
            "--token",
            Some(Path::new("f")),
            "--token-file",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        assert_eq!(Secret::one_of(None, "a", None, "b"), Ok(None));
    }

    #[test]
    fn files_are_read_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        let s = Secret::one_of(None, "--token", Some(&f), "--token-file").unwrap();
        assert_eq!(s.unwrap().expose(), "0123456789abcdef0123");
        let missing = dir.path().join("missing");
        let e = Secret::from_file(&missing, "--token-file")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--token-file ") && e.contains("missing"),
            "{e}"
        );
    }
}
