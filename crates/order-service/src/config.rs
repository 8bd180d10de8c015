//! The order service's configuration: its schema and defaults. Loading
//! (file, `ORDER_SERVICE__SECTION__KEY`, `--set`) is `service_kit::config`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use service_kit::config::ConfigError;

/// Environment variable prefix for configuration overrides.
pub const ENV_PREFIX: &str = "ORDER_SERVICE__";

/// The service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfig {
    pub database: DatabaseConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    #[serde(default = "default_password_env")]
    pub password_env: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The order service's own database.
    #[serde(default = "default_database")]
    pub name: String,
    /// How long a request waits for a connection before answering 503.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_pool_max")]
    pub pool_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    3306
}
fn default_password_env() -> String {
    "ORDER_SERVICE_DB_PASSWORD".into()
}
fn default_database() -> String {
    "shop".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_pool_max() -> usize {
    32
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl OrderConfig {
    /// Loads the file, environment (`ORDER_SERVICE__SECTION__KEY`) and
    /// `--set` overrides.
    ///
    /// # Errors
    /// A [`ConfigError`] naming what is wrong.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let config: OrderConfig =
            service_kit::config::load_layered(path, ENV_PREFIX, env, overrides)?;
        if config.database.name.is_empty() || config.database.name.contains('`') {
            return Err(ConfigError::Field {
                field: "database.name".into(),
                message: format!("{:?} is not a usable database name", config.database.name),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/order-service.example.toml");
        let config = OrderConfig::load(Some(&path), std::iter::empty(), &[]).unwrap();
        assert_eq!(config.database.name, "shop");
        assert_eq!(config.database.user, "orders_app");
    }
}
