//! The fakes against what the real services answered: HTTP exchanges of the AWS SDK for Rust's
//! credential chain, recorded against the real IMDSv2 and STS (smithy-rs's test data, kept
//! unchanged in `data/recorded-http/`), replayed request by request to the fakes on loopback.
//! The fakes must accept the exact requests a real client sent and answer with the status,
//! headers and document shape the real services answered with.

use std::collections::BTreeSet;
use std::path::PathBuf;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use stampede_fakes::iam::lake_role_arn;
use stampede_system::TcpDialer;
use stampede_system::exchange::send_collect;

use crate::real_clients::{Fakes, start_fakes as start};

const REGION: &str = "eu-west-1";

/// One request and the real service's answer to it.
#[derive(Debug, Default)]
struct Exchange {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
    response_headers: Vec<(String, String)>,
    response_body: String,
}

impl Exchange {
    fn path(&self) -> &str {
        let rest = self.uri.split_once("://").map_or(&*self.uri, |(_, r)| r);
        rest.find('/').map_or("/", |i| &rest[i..])
    }

    fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn recording(name: &str) -> PathBuf {
    crate::repo("data/recorded-http").join(format!("smithy-{name}.json"))
}

fn headers(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, values) in value.as_object().into_iter().flatten() {
        for v in values.as_array().into_iter().flatten() {
            out.push((name.clone(), v.as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

/// The exchanges of a recording in smithy-rs's event format, in connection order.
fn exchanges(name: &str) -> Vec<Exchange> {
    let path = recording(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = std::collections::BTreeMap::<u64, Exchange>::new();
    for event in doc["events"].as_array().expect("events") {
        let id = event["connection_id"].as_u64().expect("connection_id");
        let x = out.entry(id).or_default();
        let action = &event["action"];
        if let Some(req) = action.get("Request") {
            let req = &req["request"];
            x.method = req["method"].as_str().unwrap().to_string();
            x.uri = req["uri"].as_str().unwrap().to_string();
            x.headers = headers(&req["headers"]);
        } else if let Some(resp) = action.get("Response") {
            let ok = &resp["response"]["Ok"];
            x.status = ok["status"].as_u64().unwrap() as u16;
            x.response_headers = headers(&ok["headers"]);
        } else if let Some(data) = action.get("Data") {
            let text = data["data"]["Utf8"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match data["direction"].as_str() {
                Some("Request") => x.body.push_str(&text),
                _ => x.response_body.push_str(&text),
            }
        }
    }
    assert!(!out.is_empty(), "{} holds no exchange", path.display());
    out.into_values().collect()
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn send(method: &str, url: &str, headers: &[(String, String)], body: &str) -> Answer {
    let mut req = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = send_collect(
        &TcpDialer,
        req.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
    )
    .await
    .unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: String::from_utf8_lossy(resp.body()).into_owned(),
    }
}

/// What the recorded client learnt from IMDS, as the fake told it.
#[derive(Default)]
struct Learnt {
    recorded_token: String,
    token: String,
    recorded_role: String,
    role: String,
    credentials: Option<Value>,
}

/// Replays one recording's IMDS exchanges to the fake. The real service's 503s (a transient
/// failure the recorded client retried) are skipped: the fake's throttling drops requests,
/// as the real service's does.
async fn replay_imds(fakes: &Fakes, name: &str) -> Learnt {
    let mut learnt = Learnt::default();
    let imds: Vec<_> = exchanges(name)
        .into_iter()
        .filter(|x| x.uri.contains("169.254.169.254") && x.status == 200)
        .collect();
    assert!(imds.len() >= 3, "{name}: token, role and credentials");
    for x in imds {
        // The recorded token and role name are the real service's; the fake issues its own.
        let headers: Vec<_> = x
            .headers
            .iter()
            .map(|(n, v)| {
                let v = if *v == learnt.recorded_token {
                    learnt.token.clone()
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect();
        let path = if learnt.recorded_role.is_empty() {
            x.path().to_string()
        } else {
            x.path().replace(&learnt.recorded_role, &learnt.role)
        };
        let got = send(
            &x.method,
            &format!("{}{path}", fakes.imds),
            &headers,
            &x.body,
        )
        .await;
        assert_eq!(
            got.status, x.status,
            "{name}: {} {path}: {}",
            x.method, got.body
        );
        let content_type = got
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            content_type.map(|c| c.split(';').next().unwrap_or(c)),
            x.response_header("content-type"),
            "{name}: {path}"
        );
        if path == "/latest/api/token" {
            assert_eq!(
                got.headers
                    .get("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|v| v.to_str().ok()),
                x.response_header("x-aws-ec2-metadata-token-ttl-seconds"),
                "{name}: the token's lifetime is echoed"
            );
            assert!(!got.body.is_empty());
            learnt.recorded_token = x.response_body.clone();
            learnt.token = got.body;
        } else if path.ends_with("/security-credentials/") {
            assert_eq!(
                got.body.lines().count(),
                1,
                "{name}: one role: {}",
                got.body
            );
            assert!(!got.body.contains('/'));
            learnt.recorded_role = x.response_body.trim().to_string();
            learnt.role = got.body.trim().to_string();
        } else {
            let real: Value = serde_json::from_str(&x.response_body).unwrap();
            let fake: Value = serde_json::from_str(&got.body)
                .unwrap_or_else(|e| panic!("{name}: {path}: {e}: {}", got.body));
            let keys = |v: &Value| {
                v.as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<BTreeSet<_>>()
            };
            assert_eq!(keys(&fake), keys(&real), "{name}: the credentials document");
            assert_eq!(fake["Code"], real["Code"]);
            assert_eq!(fake["Type"], real["Type"]);
            for time in ["LastUpdated", "Expiration"] {
                let t = fake[time].as_str().unwrap();
                assert!(humantime::parse_rfc3339(t).is_ok(), "{name}: {time} {t}");
            }
            learnt.credentials = Some(fake);
        }
    }
    learnt
}

#[tokio::test]
async fn the_fake_imds_answers_the_recorded_requests_of_the_real_credential_chain() {
    let fakes = start().await;
    for name in [
        "imds_default_chain_success",
        "imds_default_chain_retries",
        "imds_assume_role",
    ] {
        let learnt = replay_imds(&fakes, name).await;
        assert!(learnt.credentials.is_some(), "{name}: credentials read");
    }
}

/// The element paths of an XML document (`AssumeRoleResponse/AssumeRoleResult/...`).
fn element_paths(xml: &str) -> BTreeSet<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = BTreeSet::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                out.insert(stack.join("/"));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                out.insert(format!("{}/{name}", stack.join("/")));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// Signs `body` for STS as the SDK does, with the instance role's keys.
fn signed_headers(sts: &str, body: &str, credentials: &Value) -> Vec<(String, String)> {
    let token = credentials["Token"].as_str().unwrap().to_string();
    let identity: Identity = Credentials::new(
        credentials["AccessKeyId"].as_str().unwrap(),
        credentials["SecretAccessKey"].as_str().unwrap(),
        Some(token),
        None,
        "recorded",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sts")
        .time(stampede::world::clock::wall_now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = (
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    );
    let request = SignableRequest::new(
        "POST",
        format!("{sts}/"),
        std::iter::once((content_type.0.as_str(), content_type.1.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut headers = vec![content_type];
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
    headers
}

#[tokio::test]
async fn the_fake_sts_answers_the_recorded_assume_role_in_the_real_document_shape() {
    let fakes = start().await;
    let learnt = replay_imds(&fakes, "imds_assume_role").await;
    let credentials = learnt.credentials.expect("the instance role's keys");
    let recorded = exchanges("imds_assume_role")
        .into_iter()
        .find(|x| x.body.contains("Action=AssumeRole"))
        .expect("the recorded AssumeRole");
    // The recorded request, with the role of one of the fake's lakes in place of the recorded
    // account's role: the same form, parameter for parameter.
    let recorded_form: Vec<(String, String)> = form_urlencoded::parse(recorded.body.as_bytes())
        .into_owned()
        .collect();
    // The fake's roles also demand their tenant's external id, which the recorded role did not.
    let mut form: Vec<(String, String)> = recorded_form
        .iter()
        .map(|(k, v)| {
            let v = if k == "RoleArn" {
                lake_role_arn(1)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    form.push((
        "ExternalId".into(),
        crate::real_clients::lakes().external_id(1),
    ));
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let headers = signed_headers(&fakes.sts, &body, &credentials);
    let got = send("POST", &format!("{}/", fakes.sts), &headers, &body).await;
    assert_eq!(got.status, recorded.status, "{}", got.body);
    assert_eq!(
        element_paths(&got.body),
        element_paths(&recorded.response_body),
        "the fake's AssumeRole document has the real one's elements"
    );
    assert!(
        got.body.contains(
            &lake_role_arn(1)
                .replace(":role/", ":assumed-role/")
                .replace("arn:aws:iam::", "arn:aws:sts::")
        )
    );
}
