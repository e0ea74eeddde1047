//! Settings: defaults, then a TOML file, then `SDU_*` environment variables, then command-line flags
//! (docs/RULES.md §5). Scenario files override the same keys through [`Config::apply_overrides`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

/// The systems that have a configuration section, in docs/RULES.md §4 order.
pub const SYSTEMS: [&str; 8] = [
    "legal_entities",
    "e_license",
    "individuals",
    "civil_registry",
    "mobile_base",
    "sms",
    "consent",
    "sdu",
];

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Time from the first SMS actually sent to the reminder.
    #[serde(with = "duration_text")]
    pub reminder_after: Duration,
    /// Time from the reminder actually sent to expiry.
    #[serde(with = "duration_text")]
    pub expire_after: Duration,
    /// Local hours in which SMS may be sent, `HH:MM-HH:MM`, start inclusive, end exclusive.
    pub sms_window: SmsWindow,
    /// IANA time zone of the window and the cron schedule.
    pub timezone: String,
    /// Cron expression (with seconds) of the nightly ingest, in `timezone`.
    pub ingest_cron: String,
    /// Interval of the daemon's tick.
    #[serde(with = "duration_text")]
    pub tick: Duration,
    /// SMS language: `kk` or `ru`.
    pub sms_language: SmsLanguage,
    /// Case store: `sqlite://FILE` or `postgres://…`.
    pub database_url: String,
    /// One address for all systems; each system's path prefix is appended.
    pub base_url: String,
    /// Cases advanced at once by one process.
    pub concurrency: usize,
    /// Listen address of the daemon's operator API.
    pub api_listen: String,
    /// How long a worker's claim on a case lasts before another worker may take it over.
    #[serde(with = "duration_text")]
    pub lease: Duration,
    /// SQLite: how long a statement waits for another connection's write lock before it fails (busy).
    #[serde(with = "duration_text")]
    pub sqlite_busy_timeout: Duration,
    /// How long a pass keeps retrying after the case store failed with a transient error (connection lost,
    /// server restarting, SQLite busy): `sdu run` then gives up with exit code 1, the daemon tries again at
    /// its next tick. Also how long a query waits for a database connection.
    #[serde(with = "duration_text")]
    pub database_retry_for: Duration,
    /// Data product (docs/DATA-PRODUCT.md): the least number of organisations a published non-empty cell
    /// rests on; below it the cell is `X` (2: a single respondent is `X`, seed 002).
    pub min_respondents: usize,
    /// Research extract: the least number of lines sharing each combination of quasi-identifiers.
    pub extract_k: usize,
    /// The daemon publishes each month's release (`sdu publish`) into `DIR/YYYY-MM/` once the month is
    /// over, and serves it at `/api/releases`; unset (the default), it publishes nothing by itself.
    pub publish_dir: Option<std::path::PathBuf>,
    /// Cron expression (with seconds) of the monthly publication, in `timezone` (06:00 on the 1st).
    pub publish_cron: String,
    /// Log lines on stderr: `text` for people, `json` (one object a line) for a log collector.
    pub log_format: LogFormat,
    /// Secret key of the tags that stand for a person's IIN or phone number in log lines
    /// ([`crate::privacy::tag`]): the same key gives the same tag, so one person can be followed across
    /// lines, runs and workers. Unset, each process draws a random key, and tags correlate within one
    /// process only.
    pub log_hash_key: Option<HashKey>,
    /// Legal-entity registry overrides.
    pub legal_entities: SystemSettings,
    /// e-license overrides.
    pub e_license: SystemSettings,
    /// Individuals registry overrides.
    pub individuals: SystemSettings,
    /// Civil registry overrides.
    pub civil_registry: SystemSettings,
    /// Mobile citizens base overrides.
    pub mobile_base: SystemSettings,
    /// SMS gateway overrides.
    pub sms: SystemSettings,
    /// Consent service overrides.
    pub consent: SystemSettings,
    /// SDU overrides.
    pub sdu: SystemSettings,
    /// The proactive service (today's trusted-software register by default): its e-license code, consent
    /// purpose, SMS texts, eligibility criteria and reply vocabulary.
    pub service: crate::case::Service,
}

/// Settings of one external system; unset keys fall back to the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemSettings {
    /// The system's own base URL (its path prefix included).
    pub base_url: Option<String>,
    /// Timeout of one request.
    #[serde(default, with = "opt_duration_text")]
    pub timeout: Option<Duration>,
    /// Requests per second, at most.
    pub rate_limit: Option<u32>,
    /// Requests in flight, at most.
    pub max_concurrency: Option<usize>,
    /// Attempts per call, first included.
    pub retry_attempts: Option<u32>,
    /// First back-off between attempts.
    #[serde(default, with = "opt_duration_text")]
    pub retry_backoff: Option<Duration>,
}

/// Format of the log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `tracing`'s human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// A secret: its value is never printed by `Debug` (the configuration may be logged or shown in errors).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HashKey(pub String);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// Language of the offer SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsLanguage {
    /// Kazakh, the official text.
    Kk,
    /// Russian.
    Ru,
}

impl SmsLanguage {
    /// The language code, a key of the service's texts.
    pub fn code(self) -> &'static str {
        match self {
            Self::Kk => "kk",
            Self::Ru => "ru",
        }
    }
}

/// The daily SMS window in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsWindow {
    /// First minute SMS may go (inclusive).
    pub start: NaiveTime,
    /// First minute they may not (exclusive).
    pub end: NaiveTime,
}

impl std::str::FromStr for SmsWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("sms_window `{s}`: expected HH:MM-HH:MM"))?;
        let parse = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("sms_window `{s}`: `{t}` is not HH:MM"))
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err(format!("sms_window `{s}`: start and end are equal"));
        }
        Ok(Self { start, end })
    }
}

impl std::fmt::Display for SmsWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl Serialize for SmsWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SmsWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            reminder_after: Duration::from_secs(72 * 3600),
            expire_after: Duration::from_secs(72 * 3600),
            sms_window: "09:00-21:00".parse().expect("valid default window"),
            timezone: "Asia/Almaty".into(),
            ingest_cron: "0 0 2 * * *".into(),
            tick: Duration::from_secs(60),
            sms_language: SmsLanguage::Kk,
            database_url: "sqlite://sdu.db".into(),
            base_url: "http://127.0.0.1:8080".into(),
            concurrency: 256,
            api_listen: "127.0.0.1:8081".into(),
            lease: Duration::from_secs(300),
            sqlite_busy_timeout: Duration::from_secs(30),
            database_retry_for: Duration::from_secs(60),
            min_respondents: 2,
            extract_k: 5,
            publish_dir: None,
            publish_cron: "0 0 6 1 * *".into(),
            log_format: LogFormat::Text,
            log_hash_key: None,
            legal_entities: SystemSettings::default(),
            e_license: SystemSettings::default(),
            individuals: SystemSettings::default(),
            civil_registry: SystemSettings::default(),
            mobile_base: SystemSettings::default(),
            sms: SystemSettings::default(),
            consent: SystemSettings::default(),
            sdu: SystemSettings::default(),
            service: crate::case::Service::default(),
        }
    }
}

/// Parses `90s`, `15m`, `72h`, `3d` (and combinations such as `1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 90s, 15m, 72h, 3d: {e}"))
}

mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Config {
    /// Defaults, then `file` (if any), then `SDU_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            table = text
                .parse::<toml::Table>()
                .with_context(|| format!("config {}", path.display()))?;
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SDU_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some((system, field)) = SYSTEMS.iter().find_map(|s| {
                key.strip_prefix(&format!("{s}_"))
                    .map(|field| (*s, field.to_owned()))
            }) {
                let section = table
                    .entry(system.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = section {
                    t.insert(field, env_value(&value));
                }
            } else if key != "log" && !key.starts_with("test_") {
                // `SDU_LOG` is the log filter and `SDU_TEST_*` belong to the test harness (CI exports
                // `SDU_TEST_POSTGRES` while it runs `sdu`): neither is a setting.
                table.insert(key, env_value(&value));
            }
        }
        Self::from_table(table)
    }

    /// Defaults, then the TOML `text`, with no environment variables: what a configuration file alone
    /// says. The same checks as [`Config::load`] apply.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let table = text.parse::<toml::Table>().context("configuration")?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self> {
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        config.check()?;
        Ok(config)
    }

    /// Applies `key: value` overrides (a scenario's `config` section) on top of this configuration.
    pub fn apply_overrides(&self, overrides: &BTreeMap<String, serde_json::Value>) -> Result<Self> {
        let mut table: toml::Table =
            toml::Table::try_from(self).context("serialising the configuration")?;
        for (key, value) in overrides {
            let value =
                toml::Value::try_from(value).with_context(|| format!("config key `{key}`"))?;
            match (table.get_mut(key), value) {
                (Some(toml::Value::Table(existing)), toml::Value::Table(new)) => {
                    existing.extend(new)
                }
                (_, value) => {
                    table.insert(key.clone(), value);
                }
            }
        }
        Self::from_table(table)
    }

    fn check(&self) -> Result<()> {
        self.tz()?;
        self.cron()?;
        self.publish_schedule()?;
        if self.tick < Duration::from_secs(1) {
            bail!("tick must be at least 1s");
        }
        if self.min_respondents == 0 {
            bail!("min_respondents must be at least 1");
        }
        if self.extract_k < 2 {
            bail!("extract_k must be at least 2");
        }
        if self.concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        if self.database_retry_for < Duration::from_secs(1) {
            bail!("database_retry_for must be at least 1s");
        }
        if let Some(problem) = self.service.problem() {
            bail!("{problem}");
        }
        if self.log_hash_key.as_ref().is_some_and(|k| k.0.len() < 16) {
            // A short key can be found by trying keys against a tag of a known IIN.
            bail!("log_hash_key must be at least 16 characters");
        }
        if self.service.text(self.sms_language.code()).is_none() {
            bail!(
                "service.texts has no offer text in sms_language `{}`",
                self.sms_language.code()
            );
        }
        Ok(())
    }

    /// The configured time zone.
    pub fn tz(&self) -> Result<chrono_tz::Tz> {
        self.timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("timezone `{}` is not an IANA time zone", self.timezone))
    }

    /// The parsed ingest schedule.
    pub fn cron(&self) -> Result<croner::Cron> {
        self.ingest_cron
            .parse()
            .map_err(|e| anyhow::anyhow!("ingest_cron `{}`: {e}", self.ingest_cron))
    }

    /// The parsed monthly publication schedule.
    pub fn publish_schedule(&self) -> Result<croner::Cron> {
        self.publish_cron
            .parse()
            .map_err(|e| anyhow::anyhow!("publish_cron `{}`: {e}", self.publish_cron))
    }

    /// How the case store waits for its database.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            sqlite_busy_timeout: self.sqlite_busy_timeout,
            acquire_timeout: self.database_retry_for,
        }
    }

    /// The adapter settings of one system, from `base_url` and its section.
    pub fn http_settings(&self, system: &str) -> adapters::http::HttpSettings {
        let own = match system {
            "legal_entities" => &self.legal_entities,
            "e_license" => &self.e_license,
            "individuals" => &self.individuals,
            "civil_registry" => &self.civil_registry,
            "mobile_base" => &self.mobile_base,
            "sms" => &self.sms,
            "consent" => &self.consent,
            _ => &self.sdu,
        }
        .clone();
        let mut settings = adapters::http::HttpSettings::for_system(&self.base_url, system);
        if let Some(url) = own.base_url {
            settings.base_url = url;
        }
        if let Some(t) = own.timeout {
            settings.timeout = t;
        }
        settings.rate_limit_per_sec = own.rate_limit;
        if let Some(c) = own.max_concurrency {
            settings.max_concurrency = c;
        }
        if let Some(a) = own.retry_attempts {
            settings.retry.max_attempts = a.max(1);
        }
        if let Some(b) = own.retry_backoff {
            settings.retry.initial_backoff = b;
        }
        settings
    }
}

/// Environment values are text; numbers and booleans are recognised so that `SDU_CONCURRENCY=64` works.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_gives_the_contract_defaults() {
        let c = Config::load(None, []).unwrap();
        assert_eq!(c.reminder_after, Duration::from_secs(72 * 3600));
        assert_eq!(c.sms_window.to_string(), "09:00-21:00");
        assert_eq!(c.database_url, "sqlite://sdu.db");
        assert_eq!(c.sms_language, SmsLanguage::Kk);
        assert_eq!(c.store_options(), crate::store::StoreOptions::default());
    }

    #[test]
    fn the_database_waits_are_settings() {
        let env = [
            ("SDU_SQLITE_BUSY_TIMEOUT".to_string(), "250ms".to_string()),
            ("SDU_DATABASE_RETRY_FOR".to_string(), "5s".to_string()),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.sqlite_busy_timeout, Duration::from_millis(250));
        assert_eq!(c.database_retry_for, Duration::from_secs(5));
        assert_eq!(c.store_options().acquire_timeout, Duration::from_secs(5));
        assert!(Config::from_toml_str("database_retry_for = \"0s\"").is_err());
    }

    #[test]
    fn a_toml_string_sets_only_the_keys_it_names() {
        let c = Config::from_toml_str("expire_after = \"24h\"\n[sms]\nrate_limit = 5\n").unwrap();
        assert_eq!(c.expire_after, Duration::from_secs(24 * 3600));
        assert_eq!(c.reminder_after, Duration::from_secs(72 * 3600));
        assert_eq!(c.sms.rate_limit, Some(5));
        assert!(Config::from_toml_str("tick = \"0s\"").is_err());
        assert!(Config::from_toml_str("no_such_key = 1").is_err());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("sdu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sdu.toml");
        std::fs::write(&file, "reminder_after = \"3d\"\nsms_language = \"ru\"\n[e_license]\ntimeout = \"5s\"\nrate_limit = 10\n").unwrap();
        let env = [
            ("SDU_DATABASE_URL".to_string(), "postgres://x/y".to_string()),
            (
                "SDU_E_LICENSE_BASE_URL".to_string(),
                "http://e/e_license".to_string(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.reminder_after, Duration::from_secs(3 * 86400));
        assert_eq!(c.sms_language, SmsLanguage::Ru);
        assert_eq!(c.database_url, "postgres://x/y");
        let e = c.http_settings("e_license");
        assert_eq!(e.base_url, "http://e/e_license");
        assert_eq!(e.timeout, Duration::from_secs(5));
        assert_eq!(e.rate_limit_per_sec, Some(10));
        assert_eq!(c.http_settings("sms").base_url, "http://127.0.0.1:8080/sms");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_log_format_and_hash_key_are_settings_and_the_key_is_never_printed() {
        let c = Config::load(None, []).unwrap();
        assert_eq!(
            (c.log_format, c.log_hash_key.clone()),
            (LogFormat::Text, None)
        );
        let env = [
            ("SDU_LOG_FORMAT".to_string(), "json".to_string()),
            (
                "SDU_LOG_HASH_KEY".to_string(),
                "a secret of the operators".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.log_hash_key,
            Some(HashKey("a secret of the operators".into()))
        );
        assert!(!format!("{c:?}").contains("a secret"));
        // Through a scenario's overrides (a round trip through TOML) the key stays.
        let again = c.apply_overrides(&BTreeMap::new()).unwrap();
        assert_eq!(again.log_hash_key, c.log_hash_key);
        assert!(Config::from_toml_str("log_hash_key = \"short\"").is_err());
        assert!(Config::from_toml_str("log_format = \"xml\"").is_err());
    }

    #[test]
    fn the_log_filter_and_test_harness_variables_are_not_settings() {
        let env = [
            ("SDU_LOG".to_string(), "debug".to_string()),
            (
                "SDU_TEST_POSTGRES".to_string(),
                "postgres://postgres@127.0.0.1:5432/test".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.database_url, "sqlite://sdu.db");
    }

    #[test]
    fn an_unknown_key_or_bad_duration_is_an_error() {
        let bad = Config::default()
            .apply_overrides(&[("reminder_aftr".to_string(), serde_json::json!("72h"))].into());
        assert!(bad.unwrap_err().to_string().contains("reminder_aftr"));
        let bad = Config::default()
            .apply_overrides(&[("tick".to_string(), serde_json::json!("soon"))].into());
        assert!(bad.is_err());
    }

    #[test]
    fn scenario_overrides_apply() {
        let c = Config::default()
            .apply_overrides(
                &[
                    ("reminder_after".to_string(), serde_json::json!("24h")),
                    ("sms_window".to_string(), serde_json::json!("08:00-20:00")),
                ]
                .into(),
            )
            .unwrap();
        assert_eq!(c.reminder_after, Duration::from_secs(86400));
        assert_eq!(c.sms_window.to_string(), "08:00-20:00");
    }
}
