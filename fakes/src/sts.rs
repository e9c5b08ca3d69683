//! STS: AssumeRole and GetCallerIdentity on the query protocol (form-encoded POST, XML
//! answers), behind the region's metadata fleet and quotas.
//!
//! Every request's SigV4 signature is verified (`sigv4.rs`) against the secret of the key it
//! names; the caller is whoever holds that key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use quick_xml::escape::escape;

use crate::clock::rfc3339;
use crate::iam::{AssumeError, Iam, Identity, MAX_SESSION};
use crate::provider::{Admission, CallOutcome, ProviderCall, ProviderRegion};
use crate::sigv4::{Endpoint, Refusal, verify};

/// The STS API's XML namespace.
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Default and bounds of `DurationSeconds`, as STS documents them: 15 minutes up to 12 hours,
/// and never above the role's `MaxSessionDuration` ([`MAX_SESSION`] for every role here).
const DEFAULT_DURATION_S: u64 = 3600;
const MIN_DURATION_S: u64 = 900;
const MAX_DURATION_S: u64 = 43_200;

/// One region's STS.
#[derive(Debug, Clone)]
pub struct StsFake {
    region: ProviderRegion,
    iam: Iam,
}

/// An error as STS writes it: status, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    status: StatusCode,
    code: &'static str,
    message: String,
    outcome: CallOutcome,
}

impl StsError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            outcome: CallOutcome::Error(code.to_string()),
        }
    }

    fn with_outcome(mut self, outcome: CallOutcome) -> Self {
        self.outcome = outcome;
        self
    }
}

impl StsFake {
    /// STS for `region`, issuing keys from `iam`.
    pub fn new(region: ProviderRegion, iam: Iam) -> Self {
        Self { region, iam }
    }

    /// The HTTP routes: `POST /`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(handle))
            .with_state(self.clone())
    }

    fn caller(
        &self,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Identity, StsError> {
        let endpoint = Endpoint {
            region: self.region.name(),
            service: "sts",
            now: self.region.now(),
            unix_now: self.region.unix_now(),
        };
        verify(&self.iam, endpoint, "POST", path_and_query, headers, body).map_err(|e| {
            let (status, code) = match e.refusal() {
                Refusal::Missing => (StatusCode::FORBIDDEN, "MissingAuthenticationToken"),
                Refusal::Incomplete => (StatusCode::BAD_REQUEST, "IncompleteSignature"),
                Refusal::UnknownKey => (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
                Refusal::ExpiredToken => (StatusCode::FORBIDDEN, "ExpiredToken"),
                Refusal::BadSignature => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
            };
            StsError::new(status, code, e.to_string())
        })
    }

    async fn act(
        &self,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        params: &BTreeMap<String, String>,
    ) -> (Result<String, StsError>, ProviderCall) {
        let action = params.get("Action").map_or("", String::as_str);
        let api: &'static str = match action {
            "AssumeRole" => "AssumeRole",
            "GetCallerIdentity" => "GetCallerIdentity",
            _ => "Unknown",
        };
        let resource = params.get("RoleArn").cloned().unwrap_or_default();
        let caller = self.caller(path_and_query, headers, body);
        let (account, principal) = caller
            .as_ref()
            .map_or(("anonymous".into(), "anonymous".into()), |c| {
                (c.account.clone(), c.arn.clone())
            });
        let call = ProviderCall::start(
            account.clone(),
            self.region.name(),
            "sts",
            api,
            &principal,
            "sts:AssumeRole",
            resource,
        );
        let result = match caller {
            Err(e) => Err(e),
            Ok(caller) => match self.admit(&account, api).await {
                Err(e) => Err(e),
                Ok(()) => match api {
                    "AssumeRole" => self.assume_role(&caller, params),
                    "GetCallerIdentity" => Ok(caller_identity(&caller)),
                    _ => Err(StsError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidAction",
                        format!("Could not find operation {action} for version 2011-06-15"),
                    )),
                },
            },
        };
        (result, call)
    }

    /// The provider's decision: frozen accounts are denied, quotas answer `Throttling`, the
    /// fleet takes its time or times out.
    async fn admit(&self, account: &str, api: &str) -> Result<(), StsError> {
        let now = self.region.now();
        let decision = self.region.model().admit_metadata(account, api, now);
        match decision {
            Admission::Proceed { delay } => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Admission::Frozen => Err(StsError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "The AWS account is suspended; access is denied.",
            )
            .with_outcome(CallOutcome::Frozen)),
            Admission::Throttled => {
                Err(
                    StsError::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded")
                        .with_outcome(CallOutcome::Throttled),
                )
            }
            Admission::Shed => Err(StsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service is unavailable",
            )),
            Admission::TimedOut { after } => {
                tokio::time::sleep(after).await;
                Err(StsError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "RequestTimeout",
                    "The request timed out",
                )
                .with_outcome(CallOutcome::Timeout))
            }
        }
    }

    fn assume_role(
        &self,
        caller: &Identity,
        params: &BTreeMap<String, String>,
    ) -> Result<String, StsError> {
        let missing = |name: &str| {
            StsError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!(
                    "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
                ),
            )
        };
        let role_arn = params.get("RoleArn").ok_or_else(|| missing("roleArn"))?;
        let session = params
            .get("RoleSessionName")
            .ok_or_else(|| missing("roleSessionName"))?;
        let valid_session = (2..=64).contains(&session.len())
            && session
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
        if !valid_session {
            return Err(StsError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                ),
            ));
        }
        let duration_s = match params.get("DurationSeconds") {
            None => DEFAULT_DURATION_S,
            Some(d) => d
                .parse::<u64>()
                .ok()
                .filter(|d| (MIN_DURATION_S..=MAX_DURATION_S).contains(d))
                .ok_or_else(|| {
                    StsError::new(
                        StatusCode::BAD_REQUEST,
                        "ValidationError",
                        format!(
                            "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value between {MIN_DURATION_S} and {MAX_DURATION_S}"
                        ),
                    )
                })?,
        };
        if duration_s > MAX_SESSION.as_secs() {
            return Err(StsError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let external_id = params.get("ExternalId").map(String::as_str);
        self.iam
            .may_assume(caller, role_arn, external_id)
            .map_err(|e| match e {
                AssumeError::NotTrusted { .. } => {
                    StsError::new(StatusCode::FORBIDDEN, "AccessDenied", e.to_string())
                }
                AssumeError::NoSuchRole(_) => {
                    StsError::new(StatusCode::FORBIDDEN, "AccessDenied", e.to_string())
                }
            })?;
        let now = self.region.now();
        let issued = self
            .iam
            .issue(role_arn, session, now, Duration::from_secs(duration_s));
        let expires = rfc3339(self.region.epoch_secs() + (now.as_secs() + duration_s));
        let role_id = format!("AROA{}", &issued.access_key_id[4..20]);
        let mut xml = String::new();
        let _ = write!(
            xml,
            "<AssumeRoleResponse xmlns=\"{XMLNS}\"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{expires}</Expiration></Credentials></AssumeRoleResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleResponse>",
            role_id,
            escape(session.as_str()),
            escape(issued.arn.as_str()),
            issued.access_key_id,
            issued.secret_access_key,
            issued.session_token.as_deref().unwrap_or(""),
            request_id(&issued.access_key_id),
        );
        Ok(xml)
    }
}

fn caller_identity(caller: &Identity) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        escape(caller.arn.as_str()),
        caller.access_key_id,
        caller.account,
        request_id(&caller.access_key_id)
    )
}

/// A request id derived from what the request was about, so answers stay deterministic.
fn request_id(seed: &str) -> String {
    use sha2::Digest as _;
    let h = hex::encode(sha2::Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn handle(State(sts): State<StsFake>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let params: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let (result, call) = sts.act(path_and_query, &headers, &body, &params).await;
    match result {
        Ok(xml) => {
            call.finish(CallOutcome::Ok, xml.len() as u64);
            xml_response(StatusCode::OK, xml)
        }
        Err(e) => {
            call.finish(e.outcome.clone(), 0);
            let xml = format!(
                "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                if e.status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                },
                e.code,
                escape(e.message.as_str()),
                request_id(&e.message)
            );
            xml_response(e.status, xml)
        }
    }
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut resp = (status, xml).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}
