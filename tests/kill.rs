//! The kill harness: no SMS, consent, re-issue or SDU write is ever done twice for the same case step,
//! even if the process is killed at any instant and restarted (docs/RULES.md §2.11), and nothing is lost.
//!
//! A `mock-registries` child serves `tests/fixtures/kill.yaml` (40 organisations: shared heads, ineligible
//! heads, two-permit organisations, every early outcome). A [`PLAN`] moves the simulated clock through ten
//! days: the first offers, replies, the offers that waited for a shared head, a second rename, reminders,
//! more replies, expiry. At each working stop `sdu` (one `sdu run`, or the daemon) is started and SIGKILLed
//! after a seeded random delay (every other time 5 ms up to its measured start-up time + 400 ms, otherwise
//! 5–400 ms after it records its first step, so that kills land in its work on a slow machine too), a few
//! times over, and then left to finish, so that every stop ends in a state the rules fix. The same plan
//! without any kill is the reference: after every stop the killed play must count the same cases per
//! outcome and stage, and at the end the mock must hold the same writes, each accepted once, each matching
//! what the case store recorded. A last test kills the daemon inside its catch-up ingest, which a random
//! kill rarely hits.
//!
//! `SDU_KILL_ROUNDS` (kills per stop, default 2) and `SDU_KILL_SEED` (default 7) make longer runs:
//! `scripts/kill-soak.sh ROUNDS [SEEDS]`. With `SDU_TEST_POSTGRES` set, the run and daemon variants are also
//! played on PostgreSQL (a fresh database per run) against the same SQLite reference.

mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Timelike, Utc};
use procs::{MockChild, Sdu, SplitMix, TestDb, at, eventually};
use sdu::store::{Store, ms};
use tokio::sync::OnceCell;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kill.yaml");

/// The next worker takes over a killed one's claims within this (wall clock), although claims last the
/// default `lease` of 5 minutes: the killed worker's mark of life died with it.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(10);

/// The wall clock, for the takeover's time.
#[allow(clippy::disallowed_methods)] // the test's own stopwatch
fn stopwatch() -> std::time::Instant {
    std::time::Instant::now()
}

/// One stop of the plan.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Set both clocks here, then run `sdu` (killing it at random first) until it comes to rest.
    Work(&'static str),
    /// Set the mock's clock here and answer the SMS sent since the last answers ([`answer`]).
    Replies(&'static str),
    /// The organisation is renamed again (the mock's clock is set to `at`).
    Rename {
        bin: &'static str,
        to: &'static str,
        at: &'static str,
    },
}

/// Ten days of one organisation world, in local time (UTC+5). Reminders fall due 72 h after the first SMS,
/// expiry 72 h after the reminder.
const PLAN: &[Stop] = &[
    // Ingest and checks at night (the daemon only records the start of its schedule).
    Stop::Work("2026-11-02T01:30:00+05:00"),
    // The window opens: first offers (catch-up ingest for the daemon).
    Stop::Work("2026-11-02T10:00:00+05:00"),
    Stop::Replies("2026-11-02T11:00:00+05:00"),
    // Declines, consents, re-issues, write-backs; offers that waited for a shared head go out.
    Stop::Work("2026-11-02T11:00:00+05:00"),
    Stop::Replies("2026-11-02T12:00:00+05:00"),
    Stop::Work("2026-11-02T12:00:00+05:00"),
    Stop::Rename {
        bin: "240440650661",
        to: "ТОО «Сынақ 18 Тағы Жаңа»",
        at: "2026-11-04T01:00:00+05:00",
    },
    // Reminders for the silent ones; the second rename of organisation 18 supersedes its
    // unanswered offer and opens a new case.
    Stop::Work("2026-11-05T10:30:00+05:00"),
    Stop::Replies("2026-11-05T11:00:00+05:00"),
    Stop::Work("2026-11-05T11:00:00+05:00"),
    // Expiry of the first silent ones; reminders of the later offers.
    Stop::Work("2026-11-08T12:30:00+05:00"),
    Stop::Replies("2026-11-08T13:00:00+05:00"),
    Stop::Work("2026-11-08T13:00:00+05:00"),
    // Everything still waiting has expired.
    Stop::Work("2026-11-12T12:00:00+05:00"),
];

/// The nightly slot (02:00 local) that the daemon must have ingested by `now`; `None` before the first.
fn ingest_slot(now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let zone = FixedOffset::east_opt(5 * 3600).expect("UTC+5");
    let local = now.with_timezone(&zone);
    let day = if local.hour() >= 2 {
        local.date_naive()
    } else {
        local.date_naive().pred_opt()?
    };
    let slot = zone
        .from_local_datetime(&day.and_hms_opt(2, 0, 0)?)
        .single()?
        .with_timezone(&Utc);
    // The first stop (01:30 on the 2nd) is the daemon's first start: it only records its baseline.
    (slot > at("2026-11-02T00:00:00+05:00")).then_some(slot)
}

/// FNV-1a: a stable hash of an idempotency key, so the answers depend on the case, not on the order of
/// the gateway's list.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the head answers to the SMS sent with `key`: `"1"`, `"2"`, an invalid text, a `"1"` sent twice, or
/// nothing.
fn answer(key: &str) -> &'static [&'static str] {
    let h = fnv(key) % 8;
    if key.ends_with(":sms:1") {
        match h {
            0 | 1 => &["2"],
            2 | 3 => &["1"],
            4 => &[" 1.", "1"],
            5 => &["да"],
            _ => &[],
        }
    } else if h.is_multiple_of(2) {
        &["1"]
    } else {
        &[]
    }
}

/// `sdu run` passes, or `sdu daemon` started and stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Daemon,
}

/// What one play of the plan left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Played {
    /// Cases per `status/stage-or-reason` after each working stop.
    after_stop: Vec<(&'static str, BTreeMap<String, i64>)>,
    /// Idempotency keys of the SMS the gateway accepted.
    sms: BTreeSet<String>,
    /// Keys of the consents recorded.
    consents: BTreeSet<String>,
    /// Keys of the SDU records written.
    sdu_records: BTreeSet<String>,
    /// Every permit re-issued: id, key, name it now bears.
    reissued_permits: BTreeSet<(String, String, String)>,
}

/// Figures of one play, printed for the soak log.
#[derive(Debug, Default)]
struct Figures {
    /// How long `sdu` took to get ready (ms); kills fall in 5 ms ..= this + 400 ms.
    ready_ms: u64,
    /// Starts that were killed.
    starts: u64,
    /// Kills that found the process still running.
    interrupted: u64,
    /// Starts that recorded something (a step, a reply) before they were killed or ended.
    after_progress: u64,
    /// Starts after which a write the mock accepted was not recorded in the store (killed between the
    /// write and the step that records it, or before the repeat of such a write).
    between_write_and_record: u64,
}

/// Writes the mock accepted that the store has not recorded (as done) yet.
async fn unrecorded_writes(mock: &MockChild, store: &Store) -> i64 {
    let state = mock.state().await;
    let written = mock.sent().await.len()
        + state.consents.len()
        + state.sdu_records.len()
        + state
            .permits
            .iter()
            .filter(|p| p.idempotency_key.is_some())
            .count();
    written as i64 - procs::scalar(store, "SELECT COUNT(*) FROM outbox").await
}

async fn summary(store: &Store) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for row in store.summary().await.expect("summary") {
        let key = match row.detail {
            Some(d) => format!("{}/{d}", row.status),
            None => row.status,
        };
        *out.entry(key).or_default() += row.count;
    }
    out
}

fn settings() -> Vec<(String, String)> {
    [("SDU_TICK", "1s"), ("SDU_API_LISTEN", "127.0.0.1:0")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How long `sdu` takes here before it does any work: a read-only dry-run against the mock (start-up
/// builds a client per system, which in a debug build on a busy machine takes a second).
async fn startup(sdu: &Sdu) -> Duration {
    let started = procs::now();
    let (status, _, stderr) = sdu
        .output(
            at("2026-11-02T01:30:00+05:00"),
            &["dry-run", "--bin", "150340517501"],
        )
        .await;
    assert!(status.success(), "sdu dry-run failed: {stderr}");
    started.elapsed()
}

/// When a start is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the process was started (start-up included).
    AfterStart(Duration),
    /// This long after the store shows its first change by this process (in the middle of its work), or
    /// after `cap` if no change comes.
    AfterProgress(Duration, Duration),
}

/// What a process leaves in the store as it works: history lines, stored replies, recorded writes.
async fn progress(store: &Store) -> i64 {
    procs::scalar(
        store,
        "SELECT (SELECT COUNT(*) FROM case_events) + (SELECT COUNT(*) FROM replies) + (SELECT COUNT(*) FROM outbox)",
    )
    .await
}

/// Starts `sdu` and SIGKILLs it at `when`; true if it was still running (a one-off pass may finish first,
/// and must then have succeeded).
async fn start_and_kill(
    mode: Mode,
    sdu: &Sdu,
    store: &Store,
    now: DateTime<Utc>,
    when: KillAt,
) -> bool {
    let args: &[&str] = match mode {
        Mode::Run => &["run"],
        Mode::Daemon => &["daemon"],
    };
    let before = progress(store).await;
    let mut child = sdu
        .command(now, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sdu starts");
    match when {
        KillAt::AfterStart(delay) => tokio::time::sleep(delay).await,
        KillAt::AfterProgress(delay, cap) => {
            let started = procs::now();
            while started.elapsed() < cap {
                if child.try_wait().expect("child status").is_some() {
                    break;
                }
                if progress(store).await > before {
                    tokio::time::sleep(delay).await;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let interrupted = match child.try_wait().expect("child status") {
        Some(status) => {
            let stderr = procs::drain(child.stderr.take()).await;
            assert!(
                status.success(),
                "sdu {args:?} failed on its own: {status}: {stderr}"
            );
            false
        }
        None => {
            child.start_kill().expect("SIGKILL");
            true
        }
    };
    child.wait().await.expect("the killed child is reaped");
    interrupted
}

/// One `sdu run --json` without a kill; returns its pass report.
async fn run_once(sdu: &Sdu, now: DateTime<Utc>) -> serde_json::Value {
    let (status, stdout, stderr) = sdu.output(now, &["run", "--json"]).await;
    assert!(status.success(), "sdu run failed: {status}: {stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("sdu run --json printed {stdout:?}: {e}"));
    json["pass"].clone()
}

/// Whether the daemon has ingested the night's renames by `now` (on its first start: recorded its baseline).
async fn daemon_ingested(store: &Store, now: DateTime<Utc>) -> bool {
    let slot = store
        .meta(sdu::engine::LAST_INGEST_SLOT)
        .await
        .expect("meta")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    match (ingest_slot(now), slot) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(want), Some(done)) => done >= want,
    }
}

/// Whether everything due at `now` is done: every reply posted is stored and handled, and no case is due.
async fn at_rest(store: &Store, now: DateTime<Utc>, replies_posted: i64) -> bool {
    procs::scalar(store, "SELECT COUNT(*) FROM replies").await == replies_posted
        && procs::scalar(
            store,
            "SELECT COUNT(*) FROM replies WHERE status = 'pending'",
        )
        .await
            == 0
        && store
            .next_due()
            .await
            .expect("next due")
            .is_none_or(|due| due > ms(now))
}

/// `sdu daemon` without a kill until it has done everything due, then SIGTERM: it must exit 0.
async fn daemon_to_rest(sdu: &Sdu, store: &Store, now: DateTime<Utc>, replies_posted: i64) {
    let mut daemon = procs::Daemon::start(sdu, now).await;
    let rested = tokio::time::timeout(Duration::from_secs(120), async {
        while !(daemon_ingested(store, now).await && at_rest(store, now, replies_posted).await) {
            if let Some(status) = daemon.try_wait() {
                return Err(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
    match rested {
        Ok(Ok(())) => {}
        Ok(Err(status)) => {
            let output = daemon.kill().await;
            panic!("sdu daemon exited on its own at {now}: {status}: {output}");
        }
        Err(_) => {
            let output = daemon.kill().await;
            panic!("sdu daemon did not come to rest at {now}: {output}");
        }
    }
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    let status = status
        .unwrap_or_else(|| panic!("the daemon did not stop within 10 s of SIGTERM: {output}"));
    assert!(
        status.success(),
        "daemon exit after SIGTERM: {status}: {output}"
    );
}

/// Answers every SMS sent since the last answers; returns how many replies were posted.
async fn answer_new_sms(mock: &MockChild, answered: &mut BTreeSet<String>) -> i64 {
    let mut posted = 0;
    let mut sent = mock.sent().await;
    sent.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    for sms in sent {
        if !answered.insert(sms.idempotency_key.clone()) {
            continue;
        }
        for text in answer(&sms.idempotency_key) {
            mock.reply(&sms.to, text).await;
            posted += 1;
        }
    }
    posted
}

/// Plays [`PLAN`] with `kills` random kills per working stop, checks what must hold whatever happened, and
/// returns what it left.
async fn play(mode: Mode, db: &TestDb, kills: u64, seed: u64) -> (Played, Figures) {
    let mock = MockChild::start(&["--fixture", FIXTURE, "--seed", "7"]).await;
    let sdu = Sdu {
        database: db.url.clone(),
        base_url: mock.url.clone(),
        env: settings(),
    };
    let mut rng = SplitMix(seed);
    // Kills fall 5–400 ms after `sdu` is ready to work, or earlier, during its start-up.
    let ready = if kills > 0 {
        startup(&sdu).await
    } else {
        Duration::ZERO
    };
    let max_delay = ready.as_millis() as u64 + 400;
    let mut figures = Figures {
        ready_ms: ready.as_millis() as u64,
        ..Figures::default()
    };
    let mut answered = BTreeSet::new();
    let mut replies_posted = 0;
    let mut after_stop = Vec::new();
    // Created and migrated here, as `sdu` would, so that progress can be watched from the first kill.
    let store = &db.open().await;
    for stop in PLAN {
        match *stop {
            Stop::Work(when) => {
                let now = at(when);
                mock.set_clock(now).await;
                for round in 0..kills {
                    let events = procs::scalar(store, "SELECT COUNT(*) FROM case_events").await;
                    figures.starts += 1;
                    // Every other kill aims at the work itself: 5–400 ms after the first step it records.
                    let when = if round.is_multiple_of(2) {
                        KillAt::AfterStart(Duration::from_millis(rng.between(5, max_delay)))
                    } else {
                        KillAt::AfterProgress(
                            Duration::from_millis(rng.between(5, 400)),
                            Duration::from_millis(max_delay),
                        )
                    };
                    if start_and_kill(mode, &sdu, store, now, when).await {
                        figures.interrupted += 1;
                    }
                    if procs::scalar(store, "SELECT COUNT(*) FROM case_events").await > events {
                        figures.after_progress += 1;
                    }
                    if unrecorded_writes(&mock, store).await > 0 {
                        figures.between_write_and_record += 1;
                    }
                }
                let killed_at = stopwatch();
                match mode {
                    Mode::Run => {
                        // One pass drives every case as far as it can go at this instant, the cases the
                        // killed runs had claimed included: nobody waits for their lease.
                        run_once(&sdu, now).await;
                        let taken_over_in = killed_at.elapsed();
                        assert!(
                            taken_over_in < TAKEOVER_WITHIN,
                            "the run after the kills at {when} took {taken_over_in:?} to finish their cases"
                        );
                        assert_eq!(
                            procs::scalar(
                                store,
                                "SELECT COUNT(*) FROM cases WHERE lease_owner IS NOT NULL"
                            )
                            .await,
                            0,
                            "a claim of a killed run is left at {when}"
                        );
                        let cases = procs::scalar(store, "SELECT COUNT(*) FROM cases").await;
                        assert_eq!(
                            cases as usize,
                            mock.feed().await.len(),
                            "cases after the pass at {when}"
                        );
                        assert!(
                            at_rest(store, now, replies_posted).await,
                            "one sdu run at {when} left work due"
                        );
                    }
                    // The daemon comes to rest (within its two minutes) only if it takes over the killed
                    // workers' claims: their 5-minute lease would outlast it.
                    Mode::Daemon => daemon_to_rest(&sdu, store, now, replies_posted).await,
                }
                after_stop.push((when, summary(store).await));
            }
            Stop::Replies(when) => {
                mock.set_clock(at(when)).await;
                replies_posted += answer_new_sms(&mock, &mut answered).await;
            }
            Stop::Rename { bin, to, at: when } => {
                mock.set_clock(at(when)).await;
                mock.rename(bin, to, at(when)).await;
            }
        }
    }
    // Finally, a pass without a kill finds nothing left to do.
    let last = PLAN
        .iter()
        .rev()
        .find_map(|s| match s {
            Stop::Work(w) => Some(at(w)),
            _ => None,
        })
        .expect("a working stop");
    let pass = run_once(&sdu, last).await;
    assert!(
        pass["steps"] == 0 && pass["replies_stored"] == 0 && pass["ingest"]["opened"] == 0,
        "a last pass still found work: {pass}"
    );
    let played = check_invariants(&mock, store, &sdu, after_stop).await;
    store_close(store).await;
    mock.stop().await;
    (played, figures)
}

async fn store_close(store: &Store) {
    match store {
        Store::Sqlite(p) => p.close().await,
        Store::Postgres(p) => p.close().await,
    }
}

/// What must hold after any play, killed or not; returns the writes for comparison with the reference.
async fn check_invariants(
    mock: &MockChild,
    store: &Store,
    sdu: &Sdu,
    after_stop: Vec<(&'static str, BTreeMap<String, i64>)>,
) -> Played {
    let cases = procs::all_cases(store).await;
    let by_key: BTreeMap<&str, &sdu::store::CaseRow> =
        cases.iter().map(|c| (c.case_key.as_str(), c)).collect();

    // No case lost, none twice: every rename of the feed has exactly one case, and no case lacks a rename.
    let feed = mock.feed().await;
    let feed_keys: BTreeSet<String> = feed
        .iter()
        .map(|r| {
            let bin = r
                .bin
                .as_str()
                .map_or_else(|| r.bin.to_string(), str::to_owned);
            sdu::case::case_key(&bin, r.at)
        })
        .collect();
    assert_eq!(feed_keys.len(), feed.len(), "the feed repeats a rename");
    assert_eq!(cases.len(), by_key.len(), "two cases share a case key");
    assert_eq!(
        by_key
            .keys()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
        feed_keys,
        "cases and renames differ"
    );

    // Every case ended: the plan runs until every offer has been answered or has expired.
    let open: Vec<_> = cases.iter().filter(|c| c.status == "open").collect();
    assert!(
        open.is_empty(),
        "cases still open at the end: {:?}",
        open.iter()
            .map(|c| (c.id, c.stage.clone(), c.due_at))
            .collect::<Vec<_>>()
    );

    // SMS: each key accepted once, each for a known case and attempt 1 or 2, as many as the case recorded.
    let sent = mock.sent().await;
    let sms: BTreeSet<String> = sent.iter().map(|s| s.idempotency_key.clone()).collect();
    assert_eq!(sms.len(), sent.len(), "the gateway accepted a key twice");
    let mut per_case: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in &sms {
        let (case_key, attempt) = key
            .rsplit_once(":sms:")
            .unwrap_or_else(|| panic!("SMS key {key} is not {{case}}:sms:{{attempt}}"));
        assert!(by_key.contains_key(case_key), "SMS {key} of no case");
        assert!(
            ["1", "2"].contains(&attempt),
            "SMS {key}: attempt {attempt}"
        );
        per_case.entry(case_key).or_default().push(attempt);
    }
    for c in &cases {
        let n = per_case.get(c.case_key.as_str()).map_or(0, Vec::len);
        assert_eq!(
            n as i64, c.attempt,
            "case {}: SMS accepted vs attempts recorded",
            c.id
        );
    }

    // Consents, re-issues and write-backs: exactly one per step of each re-issued case, none elsewhere.
    let state = mock.state().await;
    let procs::ReissueWrites {
        consents,
        sdu_records,
        permits: reissued_permits,
    } = procs::assert_reissue_writes_once(&state, &cases);

    // The store recorded every write the mock holds, and nothing the mock does not hold.
    let outbox: BTreeSet<String> = procs::texts(store, "SELECT idempotency_key FROM outbox")
        .await
        .into_iter()
        .collect();
    let mut written: BTreeSet<String> = sms.clone();
    written.extend(consents.iter().cloned());
    written.extend(sdu_records.iter().cloned());
    written.extend(reissued_permits.iter().map(|(_, k, _)| k.clone()));
    assert_eq!(outbox, written, "outbox vs writes the mock accepted");

    // The history survived every kill intact.
    let (status, stdout, stderr) = sdu
        .output(at("2026-11-12T12:00:00+05:00"), &["audit", "verify"])
        .await;
    assert!(status.success(), "audit verify: {stdout} {stderr}");

    Played {
        after_stop,
        sms,
        consents,
        sdu_records,
        reissued_permits,
    }
}

/// The plan played once without kills, on SQLite: what every killed play must reproduce.
async fn reference() -> &'static Played {
    static REFERENCE: OnceCell<Played> = OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            let db = TestDb::sqlite("kill-reference");
            let (played, _) = play(Mode::Run, &db, 0, 0).await;
            db.remove().await;
            played
        })
        .await
}

fn kills_per_stop() -> u64 {
    std::env::var("SDU_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn seed() -> u64 {
    std::env::var("SDU_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
}

/// Plays the plan with kills and compares it with the reference.
async fn killed_play_matches_the_reference(mode: Mode, db: TestDb, label: &str) {
    let reference = reference().await;
    let (kills, seed) = (kills_per_stop(), seed());
    println!(
        "kill {label}: seed {seed}; a failure keeps the database {}",
        db.url
    );
    let (played, figures) = play(mode, &db, kills, seed).await;
    println!(
        "kill {label}: seed {seed}, start-up {} ms; {} starts: {} killed while running, {} recorded steps first, {} left a write accepted but not recorded; {} SMS, {} consents, {} permits re-issued, {} SDU records, each once",
        figures.ready_ms,
        figures.starts,
        figures.interrupted,
        figures.after_progress,
        figures.between_write_and_record,
        played.sms.len(),
        played.consents.len(),
        played.reissued_permits.len(),
        played.sdu_records.len()
    );
    assert!(
        figures.interrupted > 0,
        "no start was killed mid-run: the harness tested nothing"
    );
    // The daemon's first stop only records the start of its schedule; a pass ingests at once.
    let skip = usize::from(mode == Mode::Daemon);
    for ((when, got), (_, want)) in played
        .after_stop
        .iter()
        .zip(&reference.after_stop)
        .skip(skip)
    {
        assert_eq!(
            got, want,
            "{label} (seed {seed}): cases after the stop at {when}"
        );
    }
    assert_eq!(played.sms, reference.sms, "{label} (seed {seed}): SMS keys");
    assert_eq!(
        played.consents, reference.consents,
        "{label} (seed {seed}): consents"
    );
    assert_eq!(
        played.reissued_permits, reference.reissued_permits,
        "{label} (seed {seed}): permits re-issued"
    );
    assert_eq!(
        played.sdu_records, reference.sdu_records,
        "{label} (seed {seed}): SDU records"
    );
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_play_reaches_every_kind_of_ending() {
    let reference = reference().await;
    let (_, last) = reference.after_stop.last().expect("stops");
    for outcome in [
        "reissued",
        "declined",
        "expired",
        "superseded",
        "no_head",
        "no_phone/not_registered",
        "ineligible/deceased",
        "not_applicable/no_permit",
    ] {
        assert!(
            last.keys()
                .any(|k| k == outcome || k.starts_with(&format!("{outcome}/"))),
            "the reference never reaches {outcome}: {last:?}"
        );
    }
    assert!(
        reference.sms.iter().any(|k| k.ends_with(":sms:2")),
        "the reference sends reminders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdu_run_killed_at_random_instants_loses_nothing_and_repeats_no_write() {
    killed_play_matches_the_reference(Mode::Run, TestDb::sqlite("kill-run"), "sdu run, SQLite")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_killed_at_random_instants_loses_nothing_and_repeats_no_write() {
    killed_play_matches_the_reference(
        Mode::Daemon,
        TestDb::sqlite("kill-daemon"),
        "sdu daemon, SQLite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdu_run_killed_on_postgres_loses_nothing_and_repeats_no_write() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = TestDb::postgres(&server, "kill").await;
    killed_play_matches_the_reference(Mode::Run, db, "sdu run, PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_killed_on_postgres_loses_nothing_and_repeats_no_write() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = TestDb::postgres(&server, "kill_daemon").await;
    killed_play_matches_the_reference(Mode::Daemon, db, "sdu daemon, PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_during_its_catch_up_ingest_ingests_as_soon_as_it_is_back() {
    let mock = MockChild::start(&["--fixture", FIXTURE]).await;
    let db = TestDb::sqlite("kill-catch-up");
    let store = &db.open().await;
    let sdu = Sdu {
        database: db.url.clone(),
        base_url: mock.url.clone(),
        env: settings(),
    };
    let cases = || procs::scalar(store, "SELECT COUNT(*) FROM cases");

    // The first start records the beginning of the schedule.
    let night = at("2026-11-02T01:30:00+05:00");
    mock.set_clock(night).await;
    let daemon = procs::Daemon::start(&sdu, night).await;
    assert!(
        eventually(Duration::from_secs(60), || daemon_ingested(store, night)).await,
        "the daemon records its first start"
    );
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{output}");

    // Back at 10:00 the night's ingest is due at once; the registry answers slowly, and the daemon is
    // killed while it waits for the rename feed.
    let ten = at("2026-11-02T10:00:00+05:00");
    mock.set_clock(ten).await;
    mock.set_fault(serde_json::json!({"system": "legal_entities", "mode": "slow", "rate": 1.0, "delay_ms": 5000}))
        .await;
    let feed_calls = || async {
        mock.calls()
            .await
            .get("legal_entities")
            .copied()
            .unwrap_or(0)
    };
    let before = feed_calls().await;
    let daemon = procs::Daemon::start(&sdu, ten).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            feed_calls().await > before
        })
        .await,
        "the daemon asks for the rename feed"
    );
    daemon.kill().await;
    assert_eq!(cases().await, 0, "killed while the feed was being read");
    mock.clear_faults().await;

    // Started again, it ingests the night's renames at once (catch-up is never skipped).
    let daemon = procs::Daemon::start(&sdu, ten).await;
    let ingested = eventually(Duration::from_secs(30), || async { cases().await == 40 }).await;
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(
        ingested,
        "the night's renames were not ingested after the restart: {} cases",
        cases().await
    );
    assert!(status.is_some_and(|s| s.success()), "{output}");
    store_close(store).await;
    mock.stop().await;
    db.remove().await;
}
