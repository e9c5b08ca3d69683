//! SigV4 as the provider judges it: what a request claims (its key, credential scope, signing
//! time and session token, from its `Authorization` header or a presigned URL's query), the
//! checks every service makes on those claims (scope, clock skew, token, expiry), and the
//! signature itself for the services that have no crate verifying it for them (STS, SQS, the
//! catalog): the request is signed again with the secret the caller's key belongs to, over the
//! headers the caller says it signed, and the two signatures must agree. The object store's
//! signatures are s3s's to verify; it makes the same claim checks (`s3.rs`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity as SdkIdentity;
use http::HeaderMap;

use crate::iam::{Iam, Identity, KeyError};

/// How far a request's signing time may be from the provider's clock, either way: 15 minutes,
/// as every AWS service allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request's signature or credentials are not accepted. The `Display` text is the
/// message AWS sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Authorization` header.
    #[error("Request is missing Authentication Token")]
    Missing,
    /// The header is not a SigV4 header we can read.
    #[error(
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"
    )]
    Malformed,
    /// No one holds that access key.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// A temporary key without its session token, or with another one.
    #[error("The security token included in the request is invalid.")]
    InvalidToken,
    /// Temporary credentials past their expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// Signed with another secret, or the request was changed after signing.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    /// Signed more than [`MAX_SKEW`] before the provider's clock.
    #[error("Signature expired: {signed} is now earlier than {floor} ({now} - 15 min.)")]
    Expired {
        /// The signing time, `20260101T000000Z`.
        signed: String,
        /// The provider's time less 15 minutes.
        floor: String,
        /// The provider's time.
        now: String,
    },
    /// Signed more than [`MAX_SKEW`] after the provider's clock.
    #[error("Signature not yet current: {signed} is still later than {ceiling} ({now} + 15 min.)")]
    NotYetCurrent {
        /// The signing time.
        signed: String,
        /// The provider's time plus 15 minutes.
        ceiling: String,
        /// The provider's time.
        now: String,
    },
    /// A presigned URL past its `X-Amz-Expires`.
    #[error("Request has expired")]
    PresignExpired,
    /// The credential scope names another region than the endpoint's.
    #[error("Credential should be scoped to a valid region. ")]
    WrongRegion {
        /// The region the request was scoped to.
        got: String,
        /// The endpoint's region.
        want: String,
    },
    /// The credential scope names another service than the endpoint's.
    #[error("Credential should be scoped to correct service: '{want}'. ")]
    WrongService {
        /// The service the request was scoped to.
        got: String,
        /// The endpoint's service.
        want: String,
    },
}

/// What a service's answer to a [`SignatureError`] says, in the five codes each service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No signature at all.
    Missing,
    /// A signature that cannot be read.
    Incomplete,
    /// A key no one holds, or a session key without its own token.
    UnknownKey,
    /// Credentials past their expiry.
    ExpiredToken,
    /// A signature that does not hold: another secret, a changed request, a signing time
    /// outside 15 minutes, another region's or service's scope.
    BadSignature,
}

impl SignatureError {
    /// The code class a service answers this with.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Missing => Refusal::Missing,
            Self::Malformed => Refusal::Incomplete,
            Self::UnknownKey | Self::InvalidToken => Refusal::UnknownKey,
            Self::ExpiredToken => Refusal::ExpiredToken,
            Self::Mismatch
            | Self::Expired { .. }
            | Self::NotYetCurrent { .. }
            | Self::PresignExpired
            | Self::WrongRegion { .. }
            | Self::WrongService { .. } => Refusal::BadSignature,
        }
    }
}

impl From<KeyError> for SignatureError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unknown => Self::UnknownKey,
            KeyError::InvalidToken => Self::InvalidToken,
            KeyError::Expired => Self::ExpiredToken,
        }
    }
}

/// What a signed request claims about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The access key id.
    pub key: String,
    /// The credential scope's region.
    pub region: String,
    /// The credential scope's service.
    pub service: String,
    /// When it was signed.
    pub signed_at: SystemTime,
    /// The session token it carries, if any.
    pub token: Option<String>,
    /// A presigned URL's lifetime (`X-Amz-Expires`); `None` for a signed header.
    pub expires: Option<Duration>,
    /// The headers it says it signed (header form only).
    signed_headers: Vec<String>,
    /// The signature (header form only).
    signature: String,
}

impl Claims {
    /// Reads the claims of a request from its `Authorization` header, or else from a presigned
    /// URL's query. `Ok(None)` when it is not signed at all.
    pub fn of(query: Option<&str>, headers: &HeaderMap) -> Result<Option<Self>, SignatureError> {
        let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
            let auth = auth.to_str().map_err(|_| SignatureError::Malformed)?;
            let rest = auth
                .strip_prefix("AWS4-HMAC-SHA256")
                .ok_or(SignatureError::Malformed)?
                .trim_start();
            let (mut credential, mut signed, mut signature) = (None, None, None);
            for part in rest.split(',') {
                let (name, value) = part
                    .trim()
                    .split_once('=')
                    .ok_or(SignatureError::Malformed)?;
                match name {
                    "Credential" => credential = Some(value),
                    "SignedHeaders" => signed = Some(value),
                    "Signature" => signature = Some(value),
                    _ => {}
                }
            }
            let (key, region, service) = scope(credential.ok_or(SignatureError::Malformed)?)
                .ok_or(SignatureError::Malformed)?;
            let signed_at = header_text("x-amz-date")
                .and_then(amz_date)
                .ok_or(SignatureError::Malformed)?;
            return Ok(Some(Self {
                key,
                region,
                service,
                signed_at,
                token: header_text("x-amz-security-token").map(str::to_string),
                expires: None,
                signed_headers: signed
                    .ok_or(SignatureError::Malformed)?
                    .split(';')
                    .map(str::to_string)
                    .collect(),
                signature: signature.ok_or(SignatureError::Malformed)?.to_string(),
            }));
        }
        let params: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(credential) = param("X-Amz-Credential") else {
            return Ok(None);
        };
        let (key, region, service) = scope(credential).ok_or(SignatureError::Malformed)?;
        let signed_at = param("X-Amz-Date")
            .and_then(amz_date)
            .ok_or(SignatureError::Malformed)?;
        let expires = param("X-Amz-Expires")
            .and_then(|e| e.parse().ok())
            .map(Duration::from_secs)
            .ok_or(SignatureError::Malformed)?;
        Ok(Some(Self {
            key,
            region,
            service,
            signed_at,
            token: param("X-Amz-Security-Token").map(str::to_string),
            expires: Some(expires),
            signed_headers: Vec::new(),
            signature: param("X-Amz-Signature").unwrap_or_default().to_string(),
        }))
    }

    /// The credential scope must name the endpoint's region and service.
    pub fn check_scope(&self, region: &str, service: &str) -> Result<(), SignatureError> {
        if self.service != service {
            return Err(SignatureError::WrongService {
                got: self.service.clone(),
                want: service.to_string(),
            });
        }
        if self.region != region {
            return Err(SignatureError::WrongRegion {
                got: self.region.clone(),
                want: region.to_string(),
            });
        }
        Ok(())
    }

    /// The signing time must be within [`MAX_SKEW`] of the provider's clock `now`; a presigned
    /// URL may be used until its lifetime has passed, but not before it was signed (less the
    /// same skew).
    pub fn check_time(&self, now: SystemTime) -> Result<(), SignatureError> {
        let text = |t: SystemTime| amz_text(t);
        if self.signed_at > now + MAX_SKEW {
            return Err(SignatureError::NotYetCurrent {
                signed: text(self.signed_at),
                ceiling: text(now + MAX_SKEW),
                now: text(now),
            });
        }
        match self.expires {
            Some(lifetime) if now > self.signed_at + lifetime => {
                Err(SignatureError::PresignExpired)
            }
            Some(_) => Ok(()),
            None if self.signed_at + MAX_SKEW < now => Err(SignatureError::Expired {
                signed: text(self.signed_at),
                floor: text(now - MAX_SKEW),
                now: text(now),
            }),
            None => Ok(()),
        }
    }
}

/// `AKID/20260101/eu-west-1/sts/aws4_request` as (key, region, service).
fn scope(credential: &str) -> Option<(String, String, String)> {
    let mut parts = credential.split('/');
    let key = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    let service = parts.next()?;
    Some((key.into(), region.into(), service.into()))
}

/// `20260101T000000Z` as a time.
fn amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        text.get(0..4)?,
        text.get(4..6)?,
        text.get(6..8)?,
        text.get(9..11)?,
        text.get(11..13)?,
        text.get(13..15)?
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// A time as `20260101T000000Z`.
fn amz_text(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// The endpoint a request reached: the provider's region and clock, and the service.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The region the endpoint serves.
    pub region: &'a str,
    /// The service's signing name (`sts`, `sqs`, `glue`).
    pub service: &'a str,
    /// Time since the provider started, for credential expiry.
    pub now: Duration,
    /// The provider's wall clock, for the signing time.
    pub unix_now: SystemTime,
}

/// Checks a request's SigV4 signature and claims against `iam` at `endpoint`; returns who
/// signed it. In AWS's order: the scope, the key, the signature, the signing time, then the
/// session token and the credentials' expiry.
pub fn verify(
    iam: &Iam,
    endpoint: Endpoint<'_>,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Identity, SignatureError> {
    if headers.get(http::header::AUTHORIZATION).is_none() {
        return Err(SignatureError::Missing);
    }
    let claims = Claims::of(None, headers)?.ok_or(SignatureError::Missing)?;
    claims.check_scope(endpoint.region, endpoint.service)?;
    let holder = iam.holder(&claims.key).ok_or(SignatureError::UnknownKey)?;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header_text("host").ok_or(SignatureError::Malformed)?;
    // The signer adds host, date and token itself; everything else signed comes from the request.
    let added = ["host", "x-amz-date", "x-amz-security-token"];
    let mut signed = Vec::new();
    for name in claims
        .signed_headers
        .iter()
        .filter(|n| !added.contains(&n.as_str()))
    {
        signed.push((
            name.as_str(),
            header_text(name).ok_or(SignatureError::Mismatch)?,
        ));
    }
    let mut settings = SigningSettings::default();
    if !claims
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-security-token")
    {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    let identity: SdkIdentity = Credentials::new(
        &holder.access_key_id,
        &holder.secret_access_key,
        claims.token.clone(),
        None,
        "stampede",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claims.region)
        .name(&claims.service)
        .time(claims.signed_at)
        .settings(settings)
        .build()
        .map_err(|_| SignatureError::Malformed)?
        .into();
    let uri = format!("http://{host}{path_and_query}");
    let request = SignableRequest::new(method, uri, signed.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| SignatureError::Malformed)?;
    let output = sign(request, &params).map_err(|_| SignatureError::Malformed)?;
    if output.signature() != claims.signature {
        return Err(SignatureError::Mismatch);
    }
    claims.check_time(endpoint.unix_now)?;
    Ok(iam.authenticate(&claims.key, claims.token.as_deref(), endpoint.now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_authorization_header_and_the_date() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=abc".parse().unwrap());
        headers.insert("x-amz-date", "20260101T000000Z".parse().unwrap());
        let a = Claims::of(None, &headers).unwrap().unwrap();
        assert_eq!(
            (
                a.key.as_str(),
                a.region.as_str(),
                a.service.as_str(),
                a.signature.as_str()
            ),
            ("AKID", "eu-west-1", "sts", "abc")
        );
        assert_eq!(a.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(a.signed_at, epoch);
        assert_eq!(amz_text(epoch), "20260101T000000Z");
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(Claims::of(None, &headers), Err(SignatureError::Malformed));
        assert_eq!(Claims::of(None, &HeaderMap::new()), Ok(None));
    }

    #[test]
    fn a_signature_is_good_for_fifteen_minutes_either_way_and_a_presigned_url_for_its_life() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/r/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc".parse().unwrap());
        headers.insert("x-amz-date", "20260101T000000Z".parse().unwrap());
        let c = Claims::of(None, &headers).unwrap().unwrap();
        let min = |m: u64| Duration::from_secs(60 * m);
        assert!(c.check_time(epoch + min(15)).is_ok());
        assert!(c.check_time(epoch - min(15)).is_ok());
        let late = c.check_time(epoch + min(16)).unwrap_err();
        assert_eq!(
            late.to_string(),
            "Signature expired: 20260101T000000Z is now earlier than 20260101T000100Z (20260101T001600Z - 15 min.)"
        );
        assert!(matches!(
            c.check_time(epoch - min(16)),
            Err(SignatureError::NotYetCurrent { .. })
        ));
        assert!(c.check_scope("r", "s3").is_ok());
        assert!(matches!(
            c.check_scope("q", "s3"),
            Err(SignatureError::WrongRegion { .. })
        ));
        assert!(matches!(
            c.check_scope("r", "sts"),
            Err(SignatureError::WrongService { .. })
        ));
        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fr%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abc";
        let p = Claims::of(Some(presigned), &HeaderMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(p.expires, Some(min(60)));
        assert!(p.check_time(epoch + min(60)).is_ok());
        assert_eq!(
            p.check_time(epoch + min(61)),
            Err(SignatureError::PresignExpired)
        );
    }
}
