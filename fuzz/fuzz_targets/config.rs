//! `sdu::config::Config::from_toml_str` on any text: it never panics; a configuration it accepts has a
//! usable time zone, cron schedule, tick and concurrency, gives every system usable adapter settings, and
//! survives a round trip through TOML (and through an empty set of scenario overrides) unchanged.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sdu::config::{Config, SYSTEMS};

fuzz_target!(|text: &str| {
    let Ok(config) = Config::from_toml_str(text) else {
        return;
    };
    config.tz().expect("accepted with a bad time zone");
    config.cron().expect("accepted with a bad cron schedule");
    assert!(config.tick >= Duration::from_secs(1));
    assert!(config.concurrency >= 1);
    for system in SYSTEMS {
        let settings = config.http_settings(system);
        assert!(!settings.base_url.is_empty(), "{system}");
    }

    let written = toml::to_string(&config).expect("an accepted configuration serialises");
    let again = Config::from_toml_str(&written)
        .unwrap_or_else(|e| panic!("its own TOML does not load: {e:#}\n{written}"));
    assert_eq!(toml::to_string(&again).unwrap(), written);

    let same = config
        .apply_overrides(&BTreeMap::new())
        .unwrap_or_else(|e| panic!("no overrides fail: {e:#}"));
    assert_eq!(toml::to_string(&same).unwrap(), written);
});
