//! The Prometheus metrics (src/telemetry.rs, docs/OPERATIONS.md) of passes over the mock registries, read
//! as a scraper reads them: the rendered text is parsed by a Prometheus text-format parser and each family
//! is checked against what the passes did (the mock's sent SMS, the store's counts, the fault switched on).
//!
//! One test in its own binary: the recorder is global to the process, and another test's passes would
//! add to the counters.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mock_registries::{Fault, FaultMode, Mock, Scenario, SystemName};
use prometheus_parse::{Sample, Scrape, Value};
use sdu::clock::ManualClock;
use sdu::config::Config;
use sdu::engine::{Engine, IngestMode, Systems};
use sdu::store::Store;

const HEAD_IIN: &str = "580403372196";
const HEAD_PHONE: &str = "+77011234567";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the Prometheus text format")
}

/// The samples of `name` whose labels include every pair of `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The one value of a counter or gauge (0 when absent, as Prometheus would treat a series not yet
/// created).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, name, labels);
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    match found.first().map(|s| &s.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{name}: not a single value: {other:?}"),
    }
}

/// The number of observations of a histogram's series: its `+Inf` bucket.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .iter()
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            other => panic!("{name}: not a histogram: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn passes_on_the_mock_render_every_family_with_the_values_they_did() {
    sdu::telemetry::install();
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/01-accept-first-offer.yaml"),
    )
    .unwrap();
    let mock = Mock::from_registries(&scenario.registries, 1);
    let start = at("2026-11-02T09:30:00+05:00");
    mock.set_now(start);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    let mut config = Config {
        base_url: format!("http://{addr}"),
        ..Config::default()
    };
    // One request a second to the legal-entity registry: the second of the pass (the organisation, after
    // the rename feed) waits on the limiter.
    config.legal_entities.rate_limit = Some(1);
    let systems = Systems::http(&config, |s| {
        s.retry = adapters::http::RetryPolicy::no_retries()
    })
    .unwrap();
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = ManualClock::new(start);
    let engine = Engine::new(store, systems, Arc::new(clock.clone()), config).unwrap();
    let wall = sdu::clock::wall();

    // The first pass: ingest, checks, the offer SMS.
    let before_ingest = wall.now();
    engine.pass(IngestMode::Now).await.unwrap();
    let after_ingest = wall.now();
    assert_eq!(mock.sent_sms().len(), 1, "the offer went");

    // Replies: one that is no answer, one from a number with no offer, then the head's "1", whose consent
    // the consent service refuses with 503 for now.
    let later = at("2026-11-02T10:00:00+05:00");
    mock.set_now(later);
    clock.set(later);
    mock.sms_reply(HEAD_PHONE, "yes");
    mock.sms_reply("+77779998877", "1");
    mock.sms_reply(HEAD_PHONE, "1");
    mock.set_fault(Fault {
        system: SystemName::Consent,
        mode: FaultMode::Unavailable,
        rate: 1.0,
        delay_ms: 0,
    });
    engine.pass(IngestMode::Now).await.unwrap();

    let text = sdu::telemetry::render(&engine).await.unwrap();
    let scrape = parse(&text);

    // Cases: the gauges say what the store says.
    let summary: BTreeMap<String, i64> = engine.summary().await.unwrap();
    assert!(!summary.is_empty());
    for (key, count) in &summary {
        let (status, detail) = key.split_once('/').unwrap_or((key, ""));
        assert_eq!(
            value(
                &scrape,
                "sdu_cases",
                &[("status", status), ("detail", detail)]
            ),
            *count as f64,
            "sdu_cases for {key}"
        );
    }
    assert_eq!(
        value(
            &scrape,
            "sdu_cases",
            &[("status", "open"), ("detail", "consent_pending")]
        ),
        1.0,
        "the case waits for the consent service: {summary:?}"
    );

    // SMS: one offer, its parts counted from the text (the official Kazakh text is 11 UCS-2 parts).
    let sent = mock.sent_sms().len() as f64;
    assert_eq!(value(&scrape, "sdu_sms_sent_total", &[]), sent);
    assert_eq!(value(&scrape, "sdu_sms_parts_sent_total", &[]), 11.0 * sent);

    // Replies that changed nothing, by reason.
    assert_eq!(
        value(
            &scrape,
            "sdu_replies_unmatched_total",
            &[("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "sdu_replies_unmatched_total",
            &[("reason", "no_offer")]
        ),
        1.0
    );

    // Upstream calls: latencies per system and outcome, the consent service's 503s by kind.
    assert!(
        observations(
            &scrape,
            "sdu_upstream_request_duration_seconds",
            &[("system", "legal_entities"), ("outcome", "ok")]
        ) >= 2.0
    );
    assert!(
        observations(
            &scrape,
            "sdu_upstream_request_duration_seconds",
            &[("system", "sms"), ("outcome", "ok")]
        ) >= 2.0,
        "the offer and the reply feed"
    );
    assert!(
        observations(
            &scrape,
            "sdu_upstream_request_duration_seconds",
            &[("system", "consent"), ("outcome", "error")]
        ) >= 1.0
    );
    let consent_errors = value(
        &scrape,
        "sdu_upstream_errors_total",
        &[("system", "consent"), ("kind", "server_error")],
    );
    assert!(consent_errors >= 1.0, "{text}");
    assert_eq!(
        samples(&scrape, "sdu_upstream_errors_total", &[])
            .iter()
            .filter(|s| s.labels.get("system") != Some("consent"))
            .count(),
        0,
        "only the consent service failed"
    );

    // Steps by kind: the checks, the one send, the consent attempt.
    for step in ["check", "send", "consent"] {
        assert!(
            observations(&scrape, "sdu_step_duration_seconds", &[("step", step)]) >= 1.0,
            "{step}"
        );
    }
    assert_eq!(
        observations(&scrape, "sdu_step_duration_seconds", &[("step", "send")]),
        1.0
    );

    // The rate limit of the legal-entity registry held a request back.
    assert!(
        observations(
            &scrape,
            "sdu_rate_limiter_wait_duration_seconds",
            &[("system", "legal_entities")]
        ) >= 1.0
    );

    // The last ingest: the second pass's (`sdu run` ingests every pass), on the wall clock.
    let last = value(&scrape, "sdu_last_ingest_success_timestamp_seconds", &[]);
    assert!(
        last >= before_ingest.timestamp() as f64 && last <= wall.now().timestamp() as f64 + 1.0,
        "{last} vs {before_ingest}..{after_ingest}"
    );
    let age = value(&scrape, "sdu_last_ingest_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(value(&scrape, "sdu_ingest_overdue", &[]), 0.0);

    // The SMS pause switch.
    assert_eq!(value(&scrape, "sdu_sms_paused", &[]), 0.0);
    sdu::telemetry::set_sms_paused(true);
    let paused = parse(&sdu::telemetry::render(&engine).await.unwrap());
    assert_eq!(value(&paused, "sdu_sms_paused", &[]), 1.0);
    sdu::telemetry::set_sms_paused(false);

    // Every family has its help text; no label or value carries the head's IIN or number.
    for family in [
        "sdu_cases",
        "sdu_step_duration_seconds",
        "sdu_upstream_request_duration_seconds",
        "sdu_upstream_errors_total",
        "sdu_rate_limiter_wait_duration_seconds",
        "sdu_last_ingest_success_timestamp_seconds",
        "sdu_replies_unmatched_total",
        "sdu_sms_parts_sent_total",
        "sdu_sms_paused",
    ] {
        assert!(
            scrape.docs.contains_key(family),
            "no HELP for {family}: {text}"
        );
    }
    for needle in [HEAD_IIN, &HEAD_PHONE[2..], &HEAD_PHONE[1..]] {
        assert!(!text.contains(needle), "personal data in the metrics");
    }

    // The systems failing now: the consent service, by the kind of its last failure; no longer once its
    // failures are older than five minutes.
    let now = wall.now();
    let failing = sdu::telemetry::failing_systems(now);
    assert_eq!(
        failing.iter().map(|f| f.system).collect::<Vec<_>>(),
        ["consent"],
        "{failing:?}"
    );
    let consent = &failing[0];
    assert_eq!(consent.kind, "server_error");
    assert_eq!(consent.errors_last_5m as f64, consent_errors);
    assert!(consent.last_error_at <= now && consent.last_error_at >= before_ingest);
    assert!(
        consent.last_ok_at.is_none(),
        "the consent service never answered"
    );
    assert!(sdu::telemetry::failing_systems(now + chrono::Duration::minutes(6)).is_empty());
}
