//! Every scenario file of `scenarios/` run through the real orchestrator on SQLite and, when
//! `SDU_TEST_POSTGRES` names a server, on PostgreSQL; and a check that a scenario's result does not change
//! from one run to the next. The two example stories that came with the format (accept the first offer,
//! silence until expiry) are `01-accept-first-offer.yaml` and `03-silence-expires.yaml`.

mod procs;

use std::path::{Path, PathBuf};

use sdu::config::Config;
use sdu::scenario::{FreshDatabase, ScenarioResult, collect_files, run_file};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
/// The scenario whose faults fire at random (seeded): the one where an unseeded run would show.
const RANDOM_FAULTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scenarios/33-fault-partial-rate-lookups.yaml"
);

fn config() -> Config {
    Config::load(None, std::iter::empty()).expect("the default configuration")
}

fn scenario_files() -> Vec<PathBuf> {
    let files = collect_files(&[PathBuf::from(SCENARIOS)]).expect("scenario files");
    assert!(
        files.len() >= 30,
        "scenarios/ holds the fixture set: found only {}",
        files.len()
    );
    files
}

async fn run_all(db: FreshDatabase) {
    let config = config();
    let mut failures = Vec::new();
    let files = scenario_files();
    for file in &files {
        match run_file(file, &config, &db).await {
            Ok(result) if result.passed => println!("PASS {}", result.name),
            Ok(result) => {
                println!("FAIL {}", result.name);
                failures.push(format!(
                    "{} ({}):\n    {}",
                    result.name,
                    result.file,
                    result.mismatches.join("\n    ")
                ));
            }
            Err(e) => failures.push(format!("{}: error: {e:#}", file.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_scenario_passes_on_sqlite() {
    run_all(FreshDatabase::SqliteMemory).await;
}

#[tokio::test]
async fn every_scenario_passes_on_postgres() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    run_all(FreshDatabase::Postgres(server)).await;
}

/// The result as data, for comparing two runs.
fn as_json(result: &ScenarioResult) -> serde_json::Value {
    serde_json::to_value(result).expect("a result serialises")
}

#[tokio::test]
async fn a_scenario_gives_the_same_result_every_time() {
    let config = config();
    let file = Path::new(RANDOM_FAULTS);

    let first = run_file(file, &config, &FreshDatabase::SqliteMemory)
        .await
        .expect("first run");
    let second = run_file(file, &config, &FreshDatabase::SqliteMemory)
        .await
        .expect("second run");

    assert!(first.passed, "{:?}", first.mismatches);
    assert_eq!(as_json(&first), as_json(&second));
}

/// The same world stopped while its random faults still fire, with expectations that cannot hold, so that
/// the mismatches report where each case stands at that instant: that state depends on every random draw.
#[tokio::test]
async fn a_run_stopped_while_random_faults_fire_is_repeatable() {
    let text = std::fs::read_to_string(RANDOM_FAULTS).expect("read the scenario");
    let (world, _) = text
        .split_once("\nexpect:")
        .expect("the scenario has an expect section");
    let world = world.replace(
        "run_until: 2026-11-03T00:00:00+05:00",
        "run_until: 2026-11-02T02:03:00+05:00",
    );
    assert!(world.contains("02:03:00"), "the probe stops the run early");
    let probe = format!(
        "{world}\nexpect:\n  cases:\n\
         \x20   - {{ bin: \"201140000017\", outcome: superseded }}\n\
         \x20   - {{ bin: \"150340517501\", outcome: superseded }}\n\
         \x20   - {{ bin: \"060240702395\", outcome: superseded }}\n  open_cases: 99\n"
    );
    let dir = std::env::temp_dir().join(format!("sdu-probe-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("probe.yaml");
    std::fs::write(&file, probe).unwrap();
    let config = config();

    let first = run_file(&file, &config, &FreshDatabase::SqliteMemory).await;
    let second = run_file(&file, &config, &FreshDatabase::SqliteMemory).await;
    let _ = std::fs::remove_dir_all(&dir);

    let (first, second) = (first.expect("first run"), second.expect("second run"));
    assert!(
        first.mismatches.len() >= 4,
        "every expectation of the probe is wrong on purpose: {:?}",
        first.mismatches
    );
    assert_eq!(
        first.mismatches, second.mismatches,
        "where each case stands at 02:03 is the same in both runs"
    );
    assert_eq!(first.outcomes, second.outcomes);
}
