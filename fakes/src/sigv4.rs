//! SigV4 verification for the services that have no crate doing it for them (STS, SQS, the
//! catalog): the request is signed again with the secret the caller's key belongs to, over the
//! headers the caller says it signed, and the two signatures must agree.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity as SdkIdentity;
use http::HeaderMap;

use crate::iam::{Iam, Identity};

/// Why a request's signature is not accepted.
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
    /// No one holds that access key (or its keys expired).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// Signed with another secret, or the request was changed after signing.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

struct Authorization<'a> {
    key: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let key = scope.next()?;
    let _date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    Some(Authorization {
        key,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
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

/// Checks a request's SigV4 signature against `iam` at provider time `now`; returns who
/// signed it.
pub fn verify(
    iam: &Iam,
    now: Duration,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Identity, SignatureError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SignatureError::Missing)?;
    let auth = parse(header.to_str().map_err(|_| SignatureError::Malformed)?)
        .ok_or(SignatureError::Malformed)?;
    let who = iam
        .identity(auth.key, now)
        .ok_or(SignatureError::UnknownKey)?;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let time = header_text("x-amz-date")
        .and_then(amz_date)
        .ok_or(SignatureError::Malformed)?;
    let host = header_text("host").ok_or(SignatureError::Malformed)?;
    // The signer adds host, date and token itself; everything else signed comes from the request.
    let added = ["host", "x-amz-date", "x-amz-security-token"];
    let mut signed = Vec::new();
    for name in auth.signed_headers.iter().filter(|n| !added.contains(n)) {
        signed.push((*name, header_text(name).ok_or(SignatureError::Mismatch)?));
    }
    let mut settings = SigningSettings::default();
    if !auth.signed_headers.contains(&"x-amz-security-token") {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    let token = header_text("x-amz-security-token").map(str::to_string);
    let identity: SdkIdentity = Credentials::new(
        &who.access_key_id,
        &who.secret_access_key,
        token,
        None,
        "stampede",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| SignatureError::Malformed)?
        .into();
    let uri = format!("http://{host}{path_and_query}");
    let request = SignableRequest::new(method, uri, signed.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| SignatureError::Malformed)?;
    let output = sign(request, &params).map_err(|_| SignatureError::Malformed)?;
    if output.signature() == auth.signature {
        Ok(who)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_authorization_header_and_the_date() {
        let a = parse("AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=abc").unwrap();
        assert_eq!(
            (a.key, a.region, a.service, a.signature),
            ("AKID", "eu-west-1", "sts", "abc")
        );
        assert_eq!(a.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        assert_eq!(
            amz_date("20260101T000000Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
        assert!(parse("Basic abc").is_none());
    }
}
