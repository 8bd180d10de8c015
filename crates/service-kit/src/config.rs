//! Configuration loading shared by the three binaries: one TOML file,
//! overridden by environment variables and then by `--set` flags; secrets
//! from a file or an environment variable, never from the file or the
//! command line. Each binary defines its own schema (`serde`,
//! `deny_unknown_fields`), defaults and validation.

use std::path::{Path, PathBuf};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("override {text:?}: expected section.key=value")]
    BadOverride { text: String },
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("no database password: set the environment variable {env} or the password_file key")]
    NoPassword { env: String },
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Loads a configuration of type `T`: the TOML file (if any), then environment variables `<env_prefix><SECTION>__<KEY>`,
/// then `--set section.key=value` overrides; unknown keys are the type's to
/// refuse (`deny_unknown_fields`).
///
/// # Errors
/// A [`ConfigError`] naming the file, variable or key at fault.
pub fn load_layered<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    env_prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let mut doc = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid {
                    origin: path.display().to_string(),
                    message: e.to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(env_prefix))
        .collect();
    env.sort();
    for (key, value) in env {
        let path: Vec<String> = key[env_prefix.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        set_path(&mut doc, &path, &value, &key)?;
    }
    for text in overrides {
        let (key, value) = text
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| ConfigError::BadOverride { text: text.clone() })?;
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        set_path(&mut doc, &path, value, &format!("--set {key}"))?;
    }
    let origin = path.map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            origin,
            message: e.to_string(),
        })
}

/// Reads a secret from `file` if given, else from the environment variable
/// `env`.
///
/// # Errors
/// [`ConfigError::NoPassword`] or [`ConfigError::PasswordFile`].
pub fn read_secret(file: Option<&Path>, env: &str) -> Result<String, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
            path: path.to_owned(),
            source,
        })?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var(env).map_err(|_| ConfigError::NoPassword {
        env: env.to_owned(),
    })
}

/// Sets `path` in the TOML document to `raw`, read as a TOML value when it
/// parses as one, else as a string.
fn set_path(
    doc: &mut toml::Table,
    path: &[String],
    raw: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    };
    let Some((last, parents)) = path.split_last() else {
        return Err(invalid("empty key".into()));
    };
    if path.iter().any(|p| p.is_empty()) {
        return Err(invalid("empty key segment".into()));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut table = doc;
    for part in parents {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| invalid(format!("{part} is not a section")))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        db: Db,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Db {
        host: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sets(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_win_over_environment_and_values_parse_as_toml_first() {
        let demo: Demo = load_layered(
            None,
            "DEMO__",
            env(&[("DEMO__DB__HOST", "env-host"), ("DEMO__DB__PORT", "1")]),
            &sets(&["db.port=3306", "db.tags=[\"a\", \"b\"]"]),
        )
        .unwrap();
        assert_eq!(
            demo,
            Demo {
                db: Db {
                    host: "env-host".into(),
                    port: 3306,
                    tags: vec!["a".into(), "b".into()],
                }
            }
        );
        // A value that is not TOML is taken as a string.
        let demo: Demo =
            load_layered(None, "DEMO__", env(&[]), &sets(&["db.host=db-1.internal"])).unwrap();
        assert_eq!(demo.db.host, "db-1.internal");
    }

    #[test]
    fn bad_overrides_name_what_is_wrong() {
        let err = load_layered::<Demo>(None, "DEMO__", env(&[]), &sets(&["db.host"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected section.key=value"), "{err}");
        let err = load_layered::<Demo>(None, "DEMO__", env(&[]), &sets(&["db..host=x"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty key segment"), "{err}");
        let err = load_layered::<Demo>(None, "DEMO__", env(&[]), &sets(&["db=1", "db.host=x"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("db is not a section"), "{err}");
        let err = load_layered::<Demo>(None, "DEMO__", env(&[("DEMO__DB__HOTS", "x")]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("hots"), "{err}");
    }

    #[test]
    fn secrets_come_from_a_file_without_its_line_end_or_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("service-kit-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        assert_eq!(read_secret(Some(&file), "UNUSED").unwrap(), "s3cret");
        let err = read_secret(Some(&dir.join("missing")), "UNUSED").unwrap_err();
        assert!(matches!(err, ConfigError::PasswordFile { .. }), "{err}");
        let err = read_secret(None, "SERVICE_KIT_TEST_UNSET_VARIABLE").unwrap_err();
        assert!(
            err.to_string().contains("SERVICE_KIT_TEST_UNSET_VARIABLE"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
