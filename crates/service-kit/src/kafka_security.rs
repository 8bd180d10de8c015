//! `kafka.tls` and `kafka.sasl`: how binlog-tailer and payment-service
//! authenticate to Kafka, turned into librdkafka properties once, here, for
//! every client either builds. No Kafka client lives in this crate: the
//! result is a list of property names and values.
//!
//! # Secrets
//! The SASL password and the client key's password are read from an
//! environment variable or a file named in the configuration, never from the
//! configuration itself or the command line. Once read they live only in a
//! [`KafkaSecurity`], whose `Debug` shows `<redacted>` in their place; the
//! librdkafka `ClientConfig` built from it must never be logged with `{:?}`
//! (its `Debug` prints every value), and an error text that might quote a
//! property value goes through [`KafkaSecurity::redact`].
//!
//! # `kafka.properties` and these settings
//! `kafka.properties` passes further librdkafka properties through. It never
//! takes a secret (`sasl.password`, `ssl.key.password`,
//! `ssl.keystore.password`, …) nor `sasl.username`: those are refused with the
//! setting to use instead. With `kafka.tls` or `kafka.sasl` set, the
//! properties they decide (`security.protocol`, `sasl.mechanism(s)`,
//! `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`) are
//! refused in `kafka.properties` too, so each is set in one place. Other
//! `ssl.*` and `sasl.*` properties (cipher suites, a CRL, Kerberos…) still
//! pass through and apply beside them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

use crate::config::ConfigError;

/// `kafka.tls`: encrypt the connections to the brokers and check their
/// certificates (and the host name) against `ca_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM file of the CA(s) that signed the brokers' certificates. Without
    /// it, the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that require one (mutual TLS);
    /// needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the password of an encrypted `key_file`.
    #[serde(default)]
    pub key_password_env: Option<String>,
    /// File holding the password of an encrypted `key_file` (trailing
    /// newline ignored); takes precedence over `key_password_env`.
    #[serde(default)]
    pub key_password_file: Option<PathBuf>,
}

/// The SASL mechanisms offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's (and Kafka's) name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `kafka.sasl`: log in to the brokers as `username`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    pub username: String,
    /// Environment variable holding the password (each binary has its own
    /// default).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored); takes
    /// precedence over `password_env`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// The librdkafka properties of `kafka.tls` and `kafka.sasl`, secrets
/// included. `Debug` hides the secrets.
#[derive(Clone, Default)]
pub struct KafkaSecurity {
    properties: Vec<(&'static str, String)>,
    secrets: Vec<String>,
}

/// Properties whose values are secrets; `kafka.properties` refuses them.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl.key.pem",
    "ssl_key",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.jaas.config",
];

impl KafkaSecurity {
    /// Checks `kafka.tls`, `kafka.sasl` and the pass-through property tables
    /// (`properties`: each with its key in the section, e.g. `properties`)
    /// together, and reads the secrets. `section` names the configuration
    /// section in messages (`kafka`); `default_password_env` is the variable
    /// read for the SASL password when `kafka.sasl.password_env` is not set.
    ///
    /// # Errors
    /// A [`ConfigError::Field`] naming the setting at fault and the fix, or
    /// the missing or unreadable password.
    pub fn resolve(
        section: &str,
        tls: Option<&KafkaTls>,
        sasl: Option<&KafkaSasl>,
        properties: &[(&str, &BTreeMap<String, String>)],
        default_password_env: &str,
    ) -> Result<KafkaSecurity, ConfigError> {
        let field = |key: &str, message: String| ConfigError::Field {
            field: format!("{section}.{key}"),
            message,
        };
        for (name, table) in properties {
            check_properties(section, name, tls.is_some(), sasl.is_some(), table)?;
        }
        let mut security = KafkaSecurity::default();
        let protocol = match (tls.is_some(), sasl.is_some()) {
            (false, false) => return Ok(security),
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        };
        security
            .properties
            .push(("security.protocol", protocol.into()));
        if let Some(tls) = tls {
            let file = |key: &str, path: &Path| -> Result<String, ConfigError> {
                std::fs::File::open(path).map_err(|e| {
                    field(
                        &format!("tls.{key}"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Ok(path.display().to_string())
            };
            match &tls.ca_file {
                Some(path) => security
                    .properties
                    .push(("ssl.ca.location", file("ca_file", path)?)),
                // librdkafka looks for the system's CA bundle in the usual places.
                None => security
                    .properties
                    .push(("ssl.ca.location", "probe".into())),
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    security
                        .properties
                        .push(("ssl.certificate.location", file("cert_file", cert)?));
                    security
                        .properties
                        .push(("ssl.key.location", file("key_file", key)?));
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(field(
                        "tls.cert_file",
                        "is set without tls.key_file: give the client certificate's key too".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(field(
                        "tls.key_file",
                        "is set without tls.cert_file: give the client certificate too".into(),
                    ))
                }
            }
            if tls.key_password_env.is_some() || tls.key_password_file.is_some() {
                if tls.key_file.is_none() {
                    return Err(field(
                        "tls.key_password_env",
                        "a key password is set, but no tls.key_file".into(),
                    ));
                }
                let env = tls.key_password_env.as_deref().unwrap_or_default();
                let password = crate::config::read_secret(tls.key_password_file.as_deref(), env)
                    .map_err(|e| secret_error(section, "tls.key_password_env", e))?;
                security.add_secret("ssl.key.password", password);
            }
        }
        if let Some(sasl) = sasl {
            if sasl.username.trim().is_empty() {
                return Err(field("sasl.username", "is empty".into()));
            }
            if sasl.mechanism == SaslMechanism::Plain && tls.is_none() {
                return Err(field(
                    "sasl.mechanism",
                    "PLAIN sends the password as it is: set kafka.tls as well (the broker's \
                     listener must be SASL_SSL), or use SCRAM-SHA-256 / SCRAM-SHA-512"
                        .into(),
                ));
            }
            let env = sasl.password_env.as_deref().unwrap_or(default_password_env);
            let password = crate::config::read_secret(sasl.password_file.as_deref(), env)
                .map_err(|e| secret_error(section, "sasl.password_env", e))?;
            if password.is_empty() {
                return Err(field(
                    "sasl.password_env",
                    "the SASL password read is empty".into(),
                ));
            }
            security
                .properties
                .push(("sasl.mechanism", sasl.mechanism.name().into()));
            security
                .properties
                .push(("sasl.username", sasl.username.clone()));
            security.add_secret("sasl.password", password);
        }
        Ok(security)
    }

    fn add_secret(&mut self, key: &'static str, value: String) {
        self.secrets.push(value.clone());
        self.properties.push((key, value));
    }

    /// The librdkafka properties to set on every client, after
    /// `kafka.properties` (secrets included: never log them).
    pub fn properties(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.properties.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// `text` with every secret replaced by `<redacted>`: for error texts
    /// that may quote a property value (librdkafka's configuration errors do).
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }

    /// What is set, for `check` and the start-up log: the protocol, the
    /// mechanism and user, never a secret.
    pub fn describe(&self) -> String {
        let get = |key: &str| {
            self.properties
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        };
        match (get("security.protocol"), get("sasl.mechanism")) {
            (None, _) => "no TLS, no SASL".to_owned(),
            (Some(protocol), None) => format!(
                "{protocol}{}",
                if get("ssl.certificate.location").is_some() {
                    " with a client certificate"
                } else {
                    ""
                }
            ),
            (Some(protocol), Some(mechanism)) => format!(
                "{protocol}, {mechanism} as {}",
                get("sasl.username").unwrap_or_default()
            ),
        }
    }
}

impl fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.properties {
            if self.secrets.contains(value) {
                map.entry(key, &"<redacted>");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

/// A connection failure that retrying does not cure: the broker refused the
/// login, or the TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityFailure {
    Authentication,
    Tls,
}

impl SecurityFailure {
    /// What went wrong; `detail` is the client library's own account of it.
    pub fn problem(self, detail: &str) -> String {
        match self {
            SecurityFailure::Authentication => {
                format!("the broker refused the SASL login ({detail})")
            }
            SecurityFailure::Tls => format!("the TLS connection to the broker failed ({detail})"),
        }
    }

    /// What to check, naming the settings of `section` (`kafka`).
    pub fn fix(self, section: &str) -> String {
        match self {
            SecurityFailure::Authentication => format!(
                "check {section}.sasl.username, {section}.sasl.mechanism and the password \
                 ({section}.sasl.password_env or password_file), and that the user exists on \
                 the broker for that mechanism"
            ),
            SecurityFailure::Tls => format!(
                "check that {section}.tls.ca_file is the CA that signed the broker's \
                 certificate, that the certificate names the host in \
                 {section}.bootstrap_servers, that the listener speaks TLS, and \
                 {section}.tls.cert_file / key_file if the broker requires a client certificate"
            ),
        }
    }

    /// [`problem`](Self::problem) and [`fix`](Self::fix) in one message.
    pub fn explain(self, section: &str, detail: &str) -> String {
        format!("{}; {}", self.problem(detail), self.fix(section))
    }
}

/// The first [`SecurityFailure`] a client reported, kept for whoever waits
/// on that client (librdkafka reports it on its own thread and then retries
/// for ever).
#[derive(Debug, Default)]
pub struct FailureLatch(std::sync::Mutex<Option<(SecurityFailure, String)>>);

impl FailureLatch {
    /// Keeps `failure` unless one is kept already.
    pub fn set(&self, failure: SecurityFailure, detail: &str) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some((failure, detail.to_owned()));
        }
    }

    /// The failure kept, if any.
    pub fn get(&self) -> Option<(SecurityFailure, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn secret_error(section: &str, key: &str, error: ConfigError) -> ConfigError {
    let message = match &error {
        ConfigError::NoPassword { env } if env.is_empty() => {
            "no password: set tls.key_password_env or tls.key_password_file".to_owned()
        }
        ConfigError::NoPassword { env } => format!(
            "no password: set the environment variable {env}, or name a file in {}_file \
             (never in the config file or on the command line)",
            key.trim_end_matches("_env")
        ),
        other => other.to_string(),
    };
    ConfigError::Field {
        field: format!("{section}.{key}"),
        message,
    }
}

/// Refuses secrets (always) and what `kafka.tls` / `kafka.sasl` decide (when
/// set) in `kafka.properties`.
fn check_properties(
    section: &str,
    table: &str,
    tls: bool,
    sasl: bool,
    properties: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for key in properties.keys() {
        let k = key.as_str();
        let refuse = |message: String| ConfigError::Field {
            field: format!("{section}.{table}.{key}"),
            message,
        };
        if SECRET_PROPERTIES.contains(&k) || k.contains("password") || k.contains("secret") {
            let instead = if k.starts_with("sasl.") {
                format!("{section}.sasl (username, mechanism) with password_env or password_file")
            } else {
                format!("{section}.tls.key_file with key_password_env or key_password_file")
            };
            return Err(refuse(format!(
                "holds a secret, which must not sit in the config file or on the command line; \
                 use {instead} instead"
            )));
        }
        if k == "sasl.username" {
            return Err(refuse(format!(
                "use {section}.sasl.username (with the password from {section}.sasl.password_env \
                 or password_file)"
            )));
        }
        let decided_by_tls = [
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
        ];
        if tls && (decided_by_tls.contains(&k) || k == "security.protocol") {
            return Err(refuse(format!(
                "is set by {section}.tls; set it there (ca_file, cert_file, key_file) only"
            )));
        }
        if sasl && ["sasl.mechanism", "sasl.mechanisms", "security.protocol"].contains(&k) {
            return Err(refuse(format!(
                "is set by {section}.sasl; set it there (mechanism) only"
            )));
        }
    }
    Ok(())
}

/// Sets a service's `kafka.properties`, then the TLS and SASL properties
/// (which take precedence), on a librdkafka configuration.
pub fn apply_connection(
    client: &mut rdkafka::ClientConfig,
    properties: &BTreeMap<String, String>,
    security: &KafkaSecurity,
) {
    for (key, value) in properties {
        client.set(key, value);
    }
    for (key, value) in security.properties() {
        client.set(key, value);
    }
}

/// Whether a librdkafka error (with its `reason`) is a refused login or a
/// failed TLS handshake, which librdkafka retries for ever. A broker that
/// refuses the client's certificate (or has none it wants) answers with a TLS
/// alert that librdkafka reports as a transport failure; the alert names it.
pub fn security_failure(error: &KafkaError, reason: &str) -> Option<SecurityFailure> {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
            Some(SecurityFailure::Authentication)
        }
        Some(RDKafkaErrorCode::SSL) => Some(SecurityFailure::Tls),
        Some(RDKafkaErrorCode::BrokerTransportFailure)
            if reason.contains("SSL routines")
                && reason.contains("alert")
                && (reason.contains("certificate") || reason.contains("unknown ca")) =>
        {
            Some(SecurityFailure::Tls)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "service-kit-kafka-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sasl(mechanism: SaslMechanism, file: &Path) -> KafkaSasl {
        KafkaSasl {
            mechanism,
            username: "tailer".into(),
            password_env: None,
            password_file: Some(file.to_owned()),
        }
    }

    #[test]
    fn tls_and_sasl_make_sasl_ssl_and_the_password_never_shows_in_debug() {
        let d = dir();
        std::fs::write(d.join("ca.pem"), "x").unwrap();
        std::fs::write(d.join("pw"), "very-secret-1\n").unwrap();
        let tls = KafkaTls {
            ca_file: Some(d.join("ca.pem")),
            ..KafkaTls::default()
        };
        let s = KafkaSecurity::resolve(
            "kafka",
            Some(&tls),
            Some(&sasl(SaslMechanism::ScramSha512, &d.join("pw"))),
            &[],
            "UNUSED_TEST_VARIABLE",
        )
        .unwrap();
        let props: BTreeMap<&str, &str> = s.properties().collect();
        assert_eq!(props["security.protocol"], "SASL_SSL");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(props["sasl.password"], "very-secret-1");
        let debug = format!("{s:?}");
        assert!(!debug.contains("very-secret-1"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            s.redact("Client config error: sasl.password very-secret-1"),
            "Client config error: sasl.password <redacted>"
        );
        assert_eq!(s.describe(), "SASL_SSL, SCRAM-SHA-512 as tailer");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn secrets_in_properties_are_refused_naming_the_setting_to_use() {
        for key in ["sasl.password", "ssl.key.password", "ssl.keystore.password"] {
            let props = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
            let err = KafkaSecurity::resolve("kafka", None, None, &[("properties", &props)], "V")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("kafka.properties.{key}")), "{err}");
            assert!(err.contains("password_file"), "{err}");
        }
        let props = BTreeMap::from([("sasl.username".to_owned(), "u".to_owned())]);
        let err = KafkaSecurity::resolve("kafka", None, None, &[("properties", &props)], "V")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.sasl.username"), "{err}");
    }

    #[test]
    fn what_tls_and_sasl_decide_is_set_in_one_place() {
        let d = dir();
        std::fs::write(d.join("pw"), "pw").unwrap();
        let props = BTreeMap::from([("security.protocol".to_owned(), "SSL".to_owned())]);
        let err = KafkaSecurity::resolve(
            "kafka",
            None,
            Some(&sasl(SaslMechanism::ScramSha256, &d.join("pw"))),
            &[("properties", &props)],
            "V",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is set by kafka.sasl"), "{err}");
        // Without kafka.tls/kafka.sasl, the pass-through is as before.
        let s =
            KafkaSecurity::resolve("kafka", None, None, &[("properties", &props)], "V").unwrap();
        assert_eq!(s.properties().count(), 0);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn plain_needs_tls_and_the_password_must_be_found() {
        let d = dir();
        std::fs::write(d.join("pw"), "pw").unwrap();
        let err = KafkaSecurity::resolve(
            "kafka",
            None,
            Some(&sasl(SaslMechanism::Plain, &d.join("pw"))),
            &[],
            "V",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kafka.tls"), "{err}");
        let mut no_password = sasl(SaslMechanism::ScramSha512, &d.join("pw"));
        no_password.password_file = None;
        let err = KafkaSecurity::resolve(
            "kafka",
            None,
            Some(&no_password),
            &[],
            "SERVICE_KIT_TEST_UNSET_KAFKA_PASSWORD",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("kafka.sasl.password_env")
                && err.contains("SERVICE_KIT_TEST_UNSET_KAFKA_PASSWORD"),
            "{err}"
        );
        let tls = KafkaTls {
            ca_file: Some(d.join("missing.pem")),
            ..KafkaTls::default()
        };
        let err = KafkaSecurity::resolve("kafka", Some(&tls), None, &[], "V")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kafka.tls.ca_file") && err.contains("missing.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).ok();
    }
}
