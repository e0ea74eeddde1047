//! The engine against a fake store ([`Flaky`] around an in-memory SQLite store, failing when told) and the
//! bundled mock registries in-process: what the engine does when the store fails under it, and with a case
//! it cannot read.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Engine, IngestMode, Systems};
use crate::case::Stage;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::store::{CaseStore, Flaky, Store, StoreError};

const BIN: &str = "150340517501";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An engine on a fake store and the world of scenario 01, its clock at `now`.
async fn engine(now: &str) -> (Engine<Flaky<Store>>, mock_registries::Mock) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/01-accept-first-offer.yaml"
    );
    let scenario = mock_registries::Scenario::load(std::path::Path::new(path)).unwrap();
    let mock = mock_registries::Mock::from_registries(&scenario.registries, 1);
    mock.set_now(at(now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    let config = Config {
        base_url: format!("http://{addr}"),
        database_retry_for: std::time::Duration::from_secs(30),
        ..Config::default()
    };
    let systems = Systems::http(&config, |s| {
        s.retry = adapters::http::RetryPolicy::no_retries()
    })
    .unwrap();
    let store = Flaky::new(Store::open("sqlite::memory:").await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at(now)));
    let engine = Engine::new(store, systems, clock, config).unwrap();
    (engine, mock)
}

#[tokio::test]
async fn a_store_that_fails_while_saving_steps_is_waited_out_and_no_sms_goes_twice() {
    let (engine, mock) = engine("2026-11-02T09:30:00+05:00").await;
    // The checks' save and the offer's save both fail first: the offer SMS is then sent again under the
    // same idempotency key, which the gateway accepts once.
    engine.store.fail_saves(3, StoreError::Transient);

    engine
        .pass(IngestMode::Now)
        .await
        .expect("the pass rides through");

    let cases = engine.store.cases_of(BIN).await.unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].stage(), Some(Stage::AwaitingReply));
    assert_eq!(mock.sent_sms().len(), 1, "one SMS, whatever the retries");
}

#[tokio::test]
async fn a_conflict_in_a_group_commit_saves_the_steps_one_by_one() {
    let (engine, mock) = engine("2026-11-02T09:30:00+05:00").await;
    engine.store.fail_saves(1, StoreError::Conflict);

    engine
        .pass(IngestMode::Now)
        .await
        .expect("the pass goes through");

    let cases = engine.store.cases_of(BIN).await.unwrap();
    assert_eq!(cases[0].stage(), Some(Stage::AwaitingReply));
    assert_eq!(mock.sent_sms().len(), 1);
}

#[tokio::test]
async fn a_stored_case_it_cannot_read_is_ended_not_released_to_be_claimed_again() {
    let (engine, mock) = engine("2026-11-02T02:30:00+05:00").await;
    engine.pass(IngestMode::Now).await.unwrap();
    let queued = engine.store.cases_of(BIN).await.unwrap();
    assert_eq!(queued[0].stage(), Some(Stage::Queued), "waits for 09:00");
    engine.store.inner().corrupt_stage(BIN, None).await.unwrap();

    let clock = ManualClock::new(at("2026-11-02T09:00:00+05:00"));
    let engine = Engine {
        clock: Arc::new(clock),
        ..engine
    };
    let report = engine.pass(IngestMode::Nightly).await.unwrap();

    let case = &engine.store.cases_of(BIN).await.unwrap()[0];
    assert_eq!(case.status, "failed");
    assert_eq!(case.reason.as_deref(), Some("invalid_data"));
    assert!(report.steps >= 1 && report.steps < 5, "{report:?}");
    let history = engine.store.events(case.id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, "ended");
    assert!(mock.sent_sms().is_empty());
}
