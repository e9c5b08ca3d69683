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

fn temp_dir(name: &str) -> crate::Scratch {
    crate::fresh_dir(name)
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
    assert_eq!(results["as_expected"], true);
    let junit = std::fs::read_to_string(dir.join("out/junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuite name="smoke" tests="3" failures="0" skipped="0""#),
        "{junit}"
    );
    assert!(junit.contains(r#"<testcase classname="smoke" name="no_lost_queries">"#));
    assert!(junit.contains(&format!(r#"<property name="digest" value="{digest}"/>"#)));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/run.json")).unwrap()).unwrap();
    assert_eq!(run["system_config"]["switches"]["rate_limit"], true);
    let events = std::fs::read_to_string(dir.join("out/events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count() as u64,
        results["events"].as_u64().unwrap()
    );
    assert!(dir.join("out/run.json").is_file());
    assert!(stdout.contains("--seed 7"), "{stdout}");
}

#[test]
fn a_pass_whose_state_was_never_reached_exits_3_and_names_it() {
    let dir = temp_dir("vacuous");
    // never_frozen needs a loaded metadata fleet to mean anything; five small queries do not load it.
    let text = "name: vacuous\nduration: 1m\ntick: 20ms\nworld:\n  regions: [eu-west-1]\n  lakes: { count: 20, tenants: 4, files_per_lake: 1, rows_per_file: 20, shared: true }\ntraffic:\n  replay: traces/smoke.jsonl\ninvariants: [never_frozen]\n";
    let file = write_scenario(&dir, text);
    let out = stampede(&["run", file.to_str().unwrap(), "--out", "out"], &dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains(
            "inconclusive: never_frozen passed without its state being reached (the metadata fleet ran at half its capacity or more)"
        ),
        "{said}"
    );
    // Said why in the file, the same pass is a pass.
    let explained = format!(
        "{text}expect:\n  unreached:\n    never_frozen: \"five small queries never load the fleet\"\n"
    );
    let file = write_scenario(&dir, &explained);
    let out = stampede(&["run", file.to_str().unwrap(), "--out", "out2"], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        "STAMPEDE_LAKE_EXTERNAL_ID",
    ] {
        assert!(env.contains_key(name), "{name} missing from {env:?}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list = |key: String, secret: String, token: Option<String>| {
        use futures::TryStreamExt as _;
        use object_store::ObjectStore as _;
        let mut store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&env["AWS_ENDPOINT_URL_S3"])
            .with_allow_http(true)
            .with_region(&env["AWS_REGION"])
            .with_bucket_name(&env["STAMPEDE_LAKE_BUCKET"])
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_http_connector(stampede_system::object_store_http::DialerConnector::new(
                std::sync::Arc::new(stampede_system::TcpDialer),
            ))
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                retry_timeout: std::time::Duration::ZERO,
                ..Default::default()
            });
        if let Some(token) = token {
            store = store.with_token(token);
        }
        let store = store.build().unwrap();
        async move { store.list(None).try_collect::<Vec<_>>().await }
    };
    // The exported user is the system's: the tenant's lake is not its to read.
    let denied = rt.block_on(list(
        env["AWS_ACCESS_KEY_ID"].clone(),
        env["AWS_SECRET_ACCESS_KEY"].clone(),
        None,
    ));
    // Through the tenant's role, with the external id the tenant gave, it is.
    let listed = rt.block_on(async {
        let user = aws_credential_types::Credentials::new(
            &env["AWS_ACCESS_KEY_ID"],
            &env["AWS_SECRET_ACCESS_KEY"],
            None,
            None,
            "test",
        );
        let config = stampede_system::aws_http::sdk_config(
            std::sync::Arc::new(stampede_system::TcpDialer),
            &env["AWS_ENDPOINT_URL_STS"],
            &env["AWS_REGION"],
            user,
            stampede::world::clock::wall_now(),
        );
        let out = aws_sdk_sts::Client::new(&config)
            .assume_role()
            .role_arn(&env["STAMPEDE_LAKE_ROLE_ARN"])
            .role_session_name("cli-test")
            .external_id(&env["STAMPEDE_LAKE_EXTERNAL_ID"])
            .send()
            .await
            .expect("AssumeRole with the external id");
        let c = out.credentials().unwrap();
        list(
            c.access_key_id().to_string(),
            c.secret_access_key().to_string(),
            Some(c.session_token().to_string()),
        )
        .await
    });
    child.kill().unwrap();
    let _ = child.wait();
    let denied = denied.expect_err("the system's user on a tenant's lake");
    assert!(denied.to_string().contains("AccessDenied"), "{denied}");
    assert_eq!(listed.unwrap().len(), 2, "the lake's two files");
}

/// The `*.yaml` or `*.jsonl` files directly in `dir`, sorted.
fn files_ending(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// The trace a scenario file replays, read from its `replay:` line, relative to the file.
fn replayed_trace(scenario: &Path) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(scenario).ok()?;
    // `replay: FILE`, or the `jsonl: FILE` of a flow mapping (`arrivals: { jsonl: FILE, ... }`).
    let value = text.lines().find_map(|line| {
        line.trim_start().strip_prefix("replay:").or_else(|| {
            let (_, rest) = line.split_once("jsonl:")?;
            rest.split([',', '}']).next()
        })
    })?;
    Some(scenario.parent()?.join(value.trim()))
}

/// Whether `stderr` names `file` followed by `:LINE:COL:`.
fn names_with_location(stderr: &str, file: &str) -> bool {
    stderr.match_indices(file).any(|(at, _)| {
        let before = stderr[..at].chars().next_back();
        let mut rest = stderr[at + file.len()..].split(':');
        let number = |part: Option<&str>| {
            part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        before.is_none_or(|c| c == '/' || c == '\\' || c.is_whitespace())
            && rest.next() == Some("")
            && number(rest.next())
            && number(rest.next())
            && rest.next().is_some()
    })
}

/// Compares `stderr` for the malformed `scenario` with the message kept beside it
/// (`NAME.expected`, paths from the repository's root); `STAMPEDE_BLESS=1` writes it instead.
fn expected_message(scenario: &Path, stderr: &str) -> Option<String> {
    let root = crate::repo("");
    let got = stderr.replace(&root.display().to_string(), "");
    let expected_path = scenario.with_extension("expected");
    if std::env::var_os("STAMPEDE_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return None;
    }
    let name = scenario.file_name().unwrap().to_string_lossy();
    match std::fs::read_to_string(&expected_path) {
        Ok(expected) if expected == got => None,
        Ok(expected) => Some(format!(
            "{name}: the message differs from {}:\n  expected: {expected}  got:      {got}  (STAMPEDE_BLESS=1 cargo test --test it invalid writes it anew)",
            expected_path.display()
        )),
        Err(_) => Some(format!(
            "{name}: {} is missing (STAMPEDE_BLESS=1 cargo test --test it invalid writes it)",
            expected_path.display()
        )),
    }
}

#[test]
fn every_invalid_scenario_exits_64_with_a_location_and_leaves_no_run_dir() {
    let root = scenario("invalid");
    let scenarios = files_ending(&root, "yaml");
    let traces = files_ending(&root.join("traces"), "jsonl");
    assert!(
        scenarios.len() + traces.len() >= 30,
        "scenarios/invalid/ holds {} scenario and {} trace files; at least 30 are wanted",
        scenarios.len(),
        traces.len()
    );
    let mut at_fault = std::collections::BTreeSet::new();
    let mut replays = std::collections::BTreeMap::<_, Vec<_>>::new();
    let mut problems = Vec::new();
    for path in &scenarios {
        let name = path.file_name().unwrap().to_str().unwrap();
        // The file at fault: the trace the scenario replays when it is one of the malformed
        // traces beside it, otherwise the scenario itself.
        let trace = replayed_trace(path).filter(|t| traces.contains(t));
        if let Some(t) = &trace {
            replays.entry(t.clone()).or_default().push(name);
        }
        let offending = trace.unwrap_or_else(|| path.clone());
        let offending_name = offending.file_name().unwrap().to_str().unwrap().to_string();
        at_fault.insert(offending);

        let dir = temp_dir(&format!("invalid-{}", name.trim_end_matches(".yaml")));
        let run_dir = dir.join("run");
        let out = stampede(
            &[
                "run",
                path.to_str().unwrap(),
                "--out",
                run_dir.to_str().unwrap(),
            ],
            &dir,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(64) {
            problems.push(format!(
                "{name}: exit {:?}, not 64\n{stderr}",
                out.status.code()
            ));
        }
        if !names_with_location(&stderr, &offending_name) {
            problems.push(format!(
                "{name}: stderr does not name {offending_name}:LINE:COL:\n{stderr}"
            ));
        }
        if let Some(problem) = expected_message(path, &stderr) {
            problems.push(problem);
        }
        if run_dir.exists() {
            problems.push(format!("{name}: the run directory {run_dir:?} exists"));
        }
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        if !left.is_empty() {
            problems.push(format!("{name}: left {left:?} in {dir:?}"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    for trace in &traces {
        match replays.get(trace).map(Vec::as_slice) {
            Some([_]) => {}
            other => problems.push(format!(
                "{trace:?} must be replayed by exactly one scenario, is by {other:?}"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(
        at_fault.len() >= 30,
        "{} malformed inputs (scenario files at fault and traces); at least 30 are wanted",
        at_fault.len()
    );
}

#[test]
fn the_committed_provider_trace_is_the_import_of_the_committed_cloudtrail_records() {
    let dir = temp_dir("cloudtrail-import");
    let records = crate::repo("data/cloudtrail/otrf-ec2-proxy-s3-exfiltration.ndjson");
    let out_path = dir.join("neighbour.provider.jsonl");
    let out = stampede(
        &[
            "trace",
            "import",
            "--cloudtrail",
            records.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = std::fs::read_to_string(&out_path).unwrap();
    let committed = std::fs::read_to_string(scenario(
        "traces/otrf-ec2-proxy-s3-exfiltration.provider.jsonl",
    ))
    .unwrap();
    assert_eq!(
        imported, committed,
        "scenarios/traces/otrf-ec2-proxy-s3-exfiltration.provider.jsonl is not what \
         `stampede trace import` makes of data/cloudtrail/ today: import it again"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_names_where_the_queries_come_from() {
    let dir = temp_dir("validate-source");
    let generated = scenario("traffic/cloudtrail-neighbour.yaml");
    let replayed = scenario("smoke.yaml");
    let out = stampede(
        &[
            "validate",
            generated.to_str().unwrap(),
            replayed.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("ok: ")
            && lines[0].contains(" queries from a generated poisson process, arriving from "),
        "{stdout}"
    );
    // The count, the source and when the first and the last query arrive.
    assert!(
        lines[1].ends_with("/scenarios/traces/smoke.jsonl, arriving from 1s to 5m)")
            && lines[1].contains("(10 queries"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
