//! The instance metadata service (IMDSv2): session tokens, the instance role, and that role's
//! rotating session keys, as the AWS SDKs' credential chains read them.
//!
//! One per instance, as on AWS: each host that runs the system has its own, serving its own
//! session of the instance role. It is not behind the region's metadata fleet and its calls do
//! not count towards the account's standing: its only limit is the instance's packet rate
//! ([`PACKETS_PER_S`]), and throttling shows as it does on the real service: the request is
//! dropped and the client times out. No error code is sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;

use crate::clock::rfc3339;
use crate::iam::{Iam, Identity, SYSTEM_ACCOUNT, SYSTEM_ROLE, system_role_arn};
use crate::provider::quota::{Limit, TokenBucket};
use crate::provider::{CallOutcome, ProviderCall, ProviderRegion};

/// The request and response header carrying a token's lifetime.
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The request header carrying the token.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// Longest token lifetime IMDS grants: six hours.
const MAX_TTL_S: u64 = 21_600;
/// Lifetime of the instance role's session keys.
const KEY_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// Keys are rotated this long before they expire, as the real service does.
const ROTATE_BEFORE: Duration = Duration::from_secs(300);
/// Packets per second an instance may send to its metadata service: "IMDS has a limit of 1024
/// packets per second per ENI" (EC2 User Guide, instance metadata, "Query throttling"). One
/// request is one packet here.
pub const PACKETS_PER_S: f64 = 1024.0;

#[derive(Debug)]
struct ImdsState {
    /// Tokens and when they expire.
    tokens: BTreeMap<String, Duration>,
    /// The instance role's current keys.
    keys: Option<Identity>,
    /// The instance's packet allowance.
    packets: TokenBucket,
}

/// One host's metadata service.
#[derive(Debug, Clone)]
pub struct ImdsFake {
    instance: Arc<str>,
    region: ProviderRegion,
    iam: Iam,
    state: Arc<Mutex<ImdsState>>,
}

/// The credentials document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsDoc {
    code: &'static str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

impl ImdsFake {
    /// The metadata service of instance `instance` in `region`.
    pub fn new(instance: &str, region: ProviderRegion, iam: Iam) -> Self {
        let limit = Limit {
            rate_per_s: PACKETS_PER_S,
            burst: PACKETS_PER_S,
        };
        let state = ImdsState {
            tokens: BTreeMap::new(),
            keys: None,
            packets: TokenBucket::new(limit, region.now()),
        };
        Self {
            instance: instance.into(),
            region,
            iam,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The HTTP routes under `/latest`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/latest/api/token", put(token))
            .route(
                "/latest/meta-data/iam/security-credentials/",
                get(role_name),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/{role}",
                get(credentials),
            )
            .route("/latest/meta-data/placement/region", get(region))
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, ImdsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a call within the instance's packet rate; a dropped call is reported and then
    /// never answered.
    async fn admit(&self, api: &'static str, resource: &str) -> ProviderCall {
        let call = ProviderCall::start(
            SYSTEM_ACCOUNT.into(),
            self.region.name(),
            "imds",
            api,
            &self.instance,
            "imds:Get",
            resource.into(),
        );
        let now = self.region.now();
        if self.lock().packets.try_take(now) {
            call
        } else {
            call.finish(CallOutcome::Throttled, 0);
            std::future::pending().await
        }
    }

    fn valid_token(&self, headers: &HeaderMap) -> bool {
        let now = self.region.now();
        headers
            .get(TOKEN_HEADER)
            .and_then(|t| t.to_str().ok())
            .and_then(|t| self.lock().tokens.get(t).copied())
            .is_some_and(|expires| now < expires)
    }
}

async fn token(State(imds): State<ImdsFake>, headers: HeaderMap) -> Response {
    let call = imds.admit("GetToken", "/latest/api/token").await;
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=MAX_TTL_S).contains(t)) else {
        call.finish(CallOutcome::Error("InvalidTtl".into()), 0);
        return StatusCode::BAD_REQUEST.into_response();
    };
    let now = imds.region.now();
    let token = {
        let mut state = imds.lock();
        let token = format!(
            "AQAE{}-{}",
            imds.instance
                .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
            state.tokens.len()
        );
        state
            .tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        token
    };
    call.finish(CallOutcome::Ok, token.len() as u64);
    let mut resp = token.into_response();
    resp.headers_mut()
        .insert(TTL_HEADER, HeaderValue::from(ttl));
    resp
}

async fn role_name(State(imds): State<ImdsFake>, headers: HeaderMap) -> Response {
    let call = imds
        .admit("GetRoleName", "/latest/meta-data/iam/security-credentials/")
        .await;
    if !imds.valid_token(&headers) {
        call.finish(CallOutcome::Error("Unauthorized".into()), 0);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    call.finish(CallOutcome::Ok, SYSTEM_ROLE.len() as u64);
    SYSTEM_ROLE.into_response()
}

async fn credentials(
    State(imds): State<ImdsFake>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let call = imds
        .admit(
            "GetCredentials",
            &format!("/latest/meta-data/iam/security-credentials/{role}"),
        )
        .await;
    if !imds.valid_token(&headers) {
        call.finish(CallOutcome::Error("Unauthorized".into()), 0);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if role != SYSTEM_ROLE {
        call.finish(CallOutcome::Error("NotFound".into()), 0);
        return StatusCode::NOT_FOUND.into_response();
    }
    let now = imds.region.now();
    let keys = {
        let mut state = imds.lock();
        let fresh = state
            .keys
            .as_ref()
            .is_some_and(|k| k.expires.is_some_and(|e| now + ROTATE_BEFORE < e));
        if !fresh {
            state.keys =
                Some(
                    imds.iam
                        .issue(&system_role_arn(), &imds.instance, now, KEY_LIFETIME),
                );
        }
        state.keys.clone().expect("set above")
    };
    let issued_at = keys.expires.unwrap_or(now).saturating_sub(KEY_LIFETIME);
    let doc = CredentialsDoc {
        code: "Success",
        last_updated: rfc3339(imds.region.epoch_secs() + issued_at.as_secs()),
        kind: "AWS-HMAC",
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
        token: keys.session_token.unwrap_or_default(),
        expiration: rfc3339(imds.region.epoch_secs() + keys.expires.unwrap_or(now).as_secs()),
    };
    let body = serde_json::to_string(&doc).expect("the document serialises");
    call.finish(CallOutcome::Ok, body.len() as u64);
    body.into_response()
}

async fn region(State(imds): State<ImdsFake>, headers: HeaderMap) -> Response {
    let call = imds
        .admit("GetRegion", "/latest/meta-data/placement/region")
        .await;
    if !imds.valid_token(&headers) {
        call.finish(CallOutcome::Error("Unauthorized".into()), 0);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    call.finish(CallOutcome::Ok, imds.region.name().len() as u64);
    imds.region.name().to_string().into_response()
}
