//! The `stampede` binary: exit codes, located errors, the run directory.

use std::path::Path;
use std::process::Command;

use crate::scenario;

fn stampede(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stampede-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_scenario(dir: &Path, body: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::copy(
        scenario("traces/smoke.jsonl"),
        dir.join("traces/smoke.jsonl"),
    )
    .unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn unknown_field_exits_64_with_file_line_column() {
    let dir = temp_dir("unknown");
    let text = std::fs::read_to_string(scenario("smoke.yaml"))
        .unwrap()
        .replace("tick: 20ms", "tick: 20ms\ntik: 1");
    let path = write_scenario(&dir, &text);
    let out = stampede(&["run", path.to_str().unwrap(), "--out", "out"], &dir);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:7:1:"), "{err}");
    assert!(err.contains("unknown field `tik`"), "{err}");
    assert!(
        !dir.join("out").exists(),
        "an invalid scenario leaves no run directory"
    );
}

#[test]
fn wrong_type_exits_64_with_file_line_column_and_field() {
    let dir = temp_dir("type");
    let text = std::fs::read_to_string(scenario("smoke.yaml"))
        .unwrap()
        .replace("count: 20", "count: twenty");
    let path = write_scenario(&dir, &text);
    let out = stampede(&["validate", path.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:9:19:"), "{err}");
    assert!(err.contains("world.lakes.count"), "{err}");
}

#[test]
fn bad_arguments_exit_64() {
    let out = stampede(&["run"], Path::new("."));
    assert_eq!(out.status.code(), Some(64));
    let out = stampede(&["frobnicate"], Path::new("."));
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn run_writes_the_run_directory_and_prints_the_digest() {
    let dir = temp_dir("run");
    let out = stampede(
        &[
            "run",
            scenario("smoke.yaml").to_str().unwrap(),
            "--out",
            "out",
        ],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/results.json")).unwrap()).unwrap();
    assert_eq!(results["seed"], 7);
    assert_eq!(results["queries"]["succeeded"], 10);
    assert_eq!(results["verdicts"]["no_lost_queries"]["verdict"], "pass");
    assert_eq!(results["verdicts"]["deterministic"]["verdict"], "pass");
    let digest = results["digest"].as_str().unwrap();
    assert!(stdout.contains(digest), "{stdout}");
    let events = std::fs::read_to_string(dir.join("out/events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count() as u64,
        results["events"].as_u64().unwrap()
    );
    assert!(dir.join("out/run.json").is_file());
    assert!(stdout.contains("--seed 7"), "{stdout}");
}

#[test]
fn fakes_serve_prints_exports_and_serves_real_clients() {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(["fakes", "serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut env = std::collections::BTreeMap::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let (name, value) = line
            .strip_prefix("export ")
            .unwrap()
            .split_once('=')
            .unwrap();
        env.insert(name.to_string(), value.trim_matches('\'').to_string());
        if name == "STAMPEDE_LAKE_BUCKET" {
            break;
        }
    }
    for name in [
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_STS",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "STAMPEDE_LAKE_ROLE_ARN",
    ] {
        assert!(env.contains_key(name), "{name} missing from {env:?}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt.block_on(async {
        use futures::TryStreamExt as _;
        use object_store::ObjectStore as _;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&env["AWS_ENDPOINT_URL_S3"])
            .with_allow_http(true)
            .with_region(&env["AWS_REGION"])
            .with_bucket_name(&env["STAMPEDE_LAKE_BUCKET"])
            .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
            .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
            .with_http_connector(stampede_system::http_client::DialerConnector::new(
                std::sync::Arc::new(stampede_system::TcpDialer),
            ))
            .build()
            .unwrap();
        store.list(None).try_collect::<Vec<_>>().await
    });
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(listed.unwrap().len(), 2, "the lake's two files");
}
