//! The one path every S3 request takes before its operation runs, and the report of it after:
//! the request's claims (scope, signing time, session token, expiry), the provider's admission
//! (freeze, quota, prefix limit), then the caller's authorisation on the bucket. A rule that
//! concerns every operation lands here, once.
//!
//! s3s verifies the signature itself and then calls [`Gate`], its access hook, for every
//! operation it knows, implemented here or not. [`Reported`] wraps the whole service so that
//! every request leaves one provider call event, whichever layer answered it: s3s (a bad
//! signature, an unknown operation), the gate (a refusal) or the operation.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::service::S3Service;
use s3s::{HttpError, HttpRequest, HttpResponse, S3ErrorCode, S3Result, s3_error};

use super::ObjectStoreFake;
use crate::iam::{BucketAccess, Identity, KeyError};
use crate::provider::background::intern;
use crate::provider::{Admission, CallOutcome, ProviderCall, S3Access as Partition};
use crate::sigv4::{Claims, SignatureError};

tokio::task_local! {
    /// The call of the request being served, once the gate has named it: the wrapper reports it.
    static PENDING: Arc<Mutex<Option<ProviderCall>>>;
}

/// Who made an admitted request, put in its extensions for an operation that judges a second
/// resource (a copy's source).
#[derive(Debug, Clone)]
pub(super) struct Caller(pub(super) Identity);

/// What an operation does, as IAM names it and as the bucket sees it.
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// The IAM action.
    action: &'static str,
    /// Reads or writes the bucket.
    access: BucketAccess,
    /// Works on the account's buckets, not on one bucket: `ListBuckets`, `CreateBucket`.
    account_level: bool,
}

fn rule(op: &str) -> Rule {
    let (action, access, account_level) = match op {
        "GetObject" | "HeadObject" => ("s3:GetObject", BucketAccess::Read, false),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => {
            ("s3:ListBucket", BucketAccess::Read, false)
        }
        "GetBucketLocation" => ("s3:GetBucketLocation", BucketAccess::Read, false),
        "ListParts" | "ListMultipartUploads" => {
            ("s3:ListMultipartUploadParts", BucketAccess::Read, false)
        }
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => ("s3:PutObject", BucketAccess::Write, false),
        "DeleteObject" | "DeleteObjects" => ("s3:DeleteObject", BucketAccess::Write, false),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", BucketAccess::Write, false),
        "DeleteBucket" => ("s3:DeleteBucket", BucketAccess::Write, false),
        "CreateBucket" => ("s3:CreateBucket", BucketAccess::Write, true),
        "ListBuckets" => ("s3:ListAllMyBuckets", BucketAccess::Read, true),
        // Anything else changes a bucket's configuration: only its owner may.
        _ => ("s3:PutBucketConfiguration", BucketAccess::Write, false),
    };
    Rule {
        action,
        access,
        account_level,
    }
}

/// The access hook: claims, admission, authorisation.
#[derive(Debug, Clone)]
pub(super) struct Gate(pub(super) ObjectStoreFake);

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let store = &self.0;
        // s3s lends the name; the event keeps it (one leak per operation s3s knows).
        let op = intern(cx.s3_op().name());
        let rule = rule(op);
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => ("", ""),
            S3Path::Bucket { bucket } => (&**bucket, ""),
            S3Path::Object { bucket, key } => (&**bucket, &**key),
        };
        // A listing's partition is its prefix.
        let prefix = cx.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(name, _)| name == "prefix")
                .map(|(_, v)| v.into_owned())
        });
        let partition_key = prefix.as_deref().unwrap_or(key);
        let holder = cx
            .credentials()
            .and_then(|c| store.iam.holder(&c.access_key));
        let resource = match (bucket, key) {
            ("", _) => "arn:aws:s3:::*".to_string(),
            (b, "") => format!("arn:aws:s3:::{b}"),
            (b, k) => format!("arn:aws:s3:::{b}/{k}"),
        };
        let call = ProviderCall::start(
            holder
                .as_ref()
                .map_or_else(|| "anonymous".to_string(), |h| h.account.clone()),
            &store.config.region,
            "s3",
            op,
            cx.credentials()
                .map_or("anonymous", |c| c.access_key.as_str()),
            rule.action,
            resource,
        );
        let _ = PENDING.try_with(|p| {
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(call);
        });
        let who = store.pass(cx, rule, bucket, partition_key).await?;
        cx.extensions_mut().insert(Caller(who));
        Ok(())
    }
}

impl ObjectStoreFake {
    /// The checks of the gate, in AWS's order: authentication (claims, credentials), the
    /// provider's admission, then authorisation (EVENTS.md, "Order of a provider's checks").
    async fn pass(
        &self,
        cx: &S3AccessContext<'_>,
        rule: Rule,
        bucket: &str,
        partition_key: &str,
    ) -> S3Result<Identity> {
        let who = self.authenticate(cx)?;
        let now = self.region.now();
        let partition = Partition {
            bucket,
            key: partition_key,
            write: rule.access == BucketAccess::Write,
        };
        let api = intern(cx.s3_op().name());
        let decision = self
            .region
            .model()
            .admit_s3(&who.account, api, partition, now);
        match decision {
            Admission::Proceed { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            Admission::Frozen => {
                return Err(s3_error!(
                    AccountProblem,
                    "There is a problem with your AWS account that prevents the action from completing successfully. Contact AWS Support for further assistance."
                ));
            }
            Admission::Throttled => {
                return Err(s3_error!(SlowDown, "Please reduce your request rate."));
            }
            Admission::Shed | Admission::TimedOut { .. } => {
                return Err(s3_error!(
                    ServiceUnavailable,
                    "Please reduce your request rate."
                ));
            }
        }
        let allowed = if rule.account_level {
            // Creating and listing buckets is for an account's own principals, not for a
            // lake's read-only role.
            who.role_arn
                .as_deref()
                .and_then(|r| self.iam.lake_of_role(r))
                .is_none()
        } else {
            let owner = self
                .owner(bucket)
                .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))?;
            self.iam.may_use_bucket(&who, bucket, &owner, rule.access)
        };
        if allowed {
            Ok(who)
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }

    /// Who signed the request, once its claims hold on the provider's clock.
    fn authenticate(&self, cx: &S3AccessContext<'_>) -> S3Result<Identity> {
        let claims = Claims::of(cx.uri().query(), cx.headers())
            .map_err(|e| s3_error!(AuthorizationHeaderMalformed, "{e}"))?
            .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        claims
            .check_scope(&self.config.region, "s3")
            .map_err(|e| match e {
                SignatureError::WrongService { got, want } => s3_error!(
                    AuthorizationHeaderMalformed,
                    "The authorization header is malformed; incorrect service \"{got}\". This endpoint belongs to \"{want}\"."
                ),
                SignatureError::WrongRegion { got, want } => s3_error!(
                    AuthorizationHeaderMalformed,
                    "The authorization header is malformed; the region '{got}' is wrong; expecting '{want}'"
                ),
                other => s3_error!(AuthorizationHeaderMalformed, "{other}"),
            })?;
        claims
            .check_time(self.region.unix_now())
            .map_err(|e| match e {
                SignatureError::PresignExpired => s3_error!(AccessDenied, "Request has expired"),
                _ => s3_error!(
                    RequestTimeTooSkewed,
                    "The difference between the request time and the current time is too large."
                ),
            })?;
        self.iam
            .authenticate(&claims.key, claims.token.as_deref(), self.region.now())
            .map_err(|e| match (e, &claims.token) {
                // A session key without its token is a key S3 does not know; a token that is
                // not the key's is an invalid token.
                (KeyError::Unknown, _) | (KeyError::InvalidToken, None) => s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                ),
                (KeyError::InvalidToken, Some(_)) => s3_error!(
                    InvalidToken,
                    "The provided token is malformed or otherwise invalid."
                ),
                (KeyError::Expired, _) => {
                    s3_error!(ExpiredToken, "The provided token has expired.")
                }
            })
    }
}

/// The object store's HTTP service with every request reported as one provider call.
#[derive(Clone)]
pub struct Reported {
    pub(super) inner: S3Service,
    pub(super) store: ObjectStoreFake,
}

impl std::fmt::Debug for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reported").finish_non_exhaustive()
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Reported {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let req: HttpRequest = req.map(s3s::Body::from);
        let this = self.clone();
        Box::pin(async move { this.serve(req).await })
    }
}

impl Reported {
    async fn serve(self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let text = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let range = text("range").unwrap_or_default();
        let method = req.method().clone();
        let stored: u64 = text("x-amz-decoded-content-length")
            .or_else(|| text("content-length"))
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        // The call s3s answers before the gate names one (a bad signature, an operation it
        // does not know): the signer's key, if any, and the path.
        let key = Claims::of(req.uri().query(), req.headers())
            .ok()
            .flatten()
            .map(|c| c.key);
        let holder = key.as_deref().and_then(|k| self.store.iam.holder(k));
        let unnamed = ProviderCall::start(
            holder.map_or_else(|| "anonymous".to_string(), |h| h.account),
            &self.store.config.region,
            "s3",
            "Unknown",
            key.as_deref().unwrap_or("anonymous"),
            "s3:Unknown",
            format!("arn:aws:s3:::{}", req.uri().path().trim_start_matches('/')),
        );
        let pending = Arc::new(Mutex::new(None));
        let response = PENDING.scope(pending.clone(), self.inner.call(req)).await;
        let call = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or(unnamed)
            .with_range(range);
        match &response {
            Ok(resp) => {
                let outcome = outcome(resp);
                // The bytes a call returned or stored.
                let bytes = match (&outcome, &method) {
                    (CallOutcome::Ok, &http::Method::PUT) => stored,
                    (CallOutcome::Ok, &http::Method::GET) => resp
                        .headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                call.finish(outcome, bytes);
            }
            Err(_) => call.finish(CallOutcome::Error("InternalError".into()), 0),
        }
        response
    }
}

/// How a response ends its call: success, or the error code its XML body names.
fn outcome(resp: &HttpResponse) -> CallOutcome {
    let status = resp.status();
    if status.is_success() {
        return CallOutcome::Ok;
    }
    if status == http::StatusCode::NOT_MODIFIED {
        return CallOutcome::Error(S3ErrorCode::NotModified.as_str().to_string());
    }
    let body = resp.body().bytes().unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or_else(|| status.as_str().to_string(), |(code, _)| code.to_string());
    match code.as_str() {
        "SlowDown" => CallOutcome::Throttled,
        "AccountProblem" | "AllAccessDisabled" => CallOutcome::Frozen,
        _ => CallOutcome::Error(code),
    }
}
