//! The `mock-registries` binary: it announces its address, serves a fixture or a synthetic world, rejects
//! bad input with exit status 2, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mock-registries");

fn fixture_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mock-registries-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fixture.yaml");
    std::fs::write(&path, include_str!("common/fixture.yaml")).expect("write fixture");
    path
}

/// Starts the binary, waits for its `listening on` line, returns the child and the base URL.
fn start(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, url)
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    child.wait().expect("wait")
}

#[tokio::test]
async fn the_binary_serves_a_fixture_and_stops_cleanly_on_sigterm() {
    let path = fixture_path();
    let (mut child, url) = start(&["--fixture", path.to_str().unwrap_or_default()]);
    assert!(url.starts_with("http://127.0.0.1:"));
    let org: serde_json::Value =
        reqwest::get(format!("{url}/legal_entities/organizations/190540043216"))
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
    assert_eq!(org["first_head"], "790415307770");
    assert!(terminate(&mut child).success());
}

#[tokio::test]
async fn the_binary_serves_a_synthetic_world_at_the_given_clock() {
    let (mut child, url) = start(&[
        "--synthetic",
        "1000",
        "--seed",
        "3",
        "--now",
        "2026-11-02T00:00:00+05:00",
    ]);
    let page: serde_json::Value = reqwest::get(format!("{url}/legal_entities/renames?limit=5000"))
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["renames"].as_array().map(Vec::len), Some(1000));
    assert!(terminate(&mut child).success());
}

#[test]
fn a_malformed_fixture_is_one_line_on_stderr_and_exit_status_2() {
    let dir = std::env::temp_dir().join(format!("mock-registries-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "name: x\nstart: 2026-11-02T01:00:00+05:00\nrun_until: 2026-11-03T00:00:00+05:00\nregistries:\n  legal_entities:\n    - { bin: \"1\", nam: \"typo\" }\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["--fixture", path.to_str().unwrap_or_default()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("nam"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .args(["--fixture", "/nonexistent.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_too_large_synthetic_world_or_no_source_is_exit_status_2() {
    let out = Command::new(BIN)
        .args(["--synthetic", "999999999999"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
    let out = Command::new(BIN).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}
