//! The object store: an S3-compatible service (REST/XML, SigV4) built on `s3s`.
//!
//! It serves the lakes of its region, generating each lake's files the first time the lake is
//! touched, and holds objects that clients put. Every call is a `stampede::provider` event.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use s3s::auth::{S3Auth, SecretKey};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput,
    CopyObjectResult, CopyPartResult, CopySource, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput,
    DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use sha2::{Digest, Sha256};

use crate::iam::{Iam, Identity};
use crate::lakes::LakeDirectory;
use crate::provider::{Admission, CallOutcome, ProviderCall, ProviderRegion, S3Access};

/// When every generated object was "last modified": the data epoch, 2026-01-01T00:00:00Z.
const LAST_MODIFIED_SECS: u64 = 1_767_225_600;

/// Largest page ListObjectsV2 returns, as on S3.
const MAX_KEYS: usize = 1000;

/// Configuration of one region's object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    /// The region served.
    pub region: String,
    /// The world's lakes; only those of `region` are served.
    pub lakes: LakeDirectory,
    /// Extra empty buckets that exist from the start (e.g. for results).
    pub buckets: Vec<String>,
}

#[derive(Debug, Clone)]
struct StoredObject {
    data: Bytes,
    e_tag: String,
    /// Seconds since the Unix epoch.
    last_modified: u64,
    attributes: ObjectAttributes,
}

/// The headers an object keeps from its upload and returns on every read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ObjectAttributes {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_type: Option<String>,
    /// `x-amz-meta-*`, by name.
    metadata: BTreeMap<String, String>,
}

impl ObjectAttributes {
    /// s3s carries user metadata in a `HashMap`; ours is ordered, so nothing we log or hash
    /// depends on its order.
    #[allow(clippy::disallowed_types)] // The s3s DTO's own map type, converted at once.
    fn from_upload(
        cache_control: Option<String>,
        content_disposition: Option<String>,
        content_encoding: Option<String>,
        content_language: Option<String>,
        content_type: Option<String>,
        metadata: Option<s3s::dto::Metadata>,
    ) -> Self {
        Self {
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            content_type,
            metadata: metadata.unwrap_or_default().into_iter().collect(),
        }
    }

    #[allow(clippy::disallowed_types)] // The s3s DTO's own map type.
    fn metadata(&self) -> Option<s3s::dto::Metadata> {
        (!self.metadata.is_empty()).then(|| self.metadata.clone().into_iter().collect())
    }

    /// The stored content type, or S3's default for objects uploaded without one.
    fn content_type(&self) -> String {
        self.content_type
            .clone()
            .unwrap_or_else(|| "binary/octet-stream".into())
    }
}

impl StoredObject {
    fn new(data: Bytes, last_modified: u64) -> Self {
        let e_tag = hex::encode(&Sha256::digest(&data)[..16]);
        Self {
            data,
            e_tag,
            last_modified,
            attributes: ObjectAttributes::default(),
        }
    }

    fn with_attributes(mut self, attributes: ObjectAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    fn last_modified(&self) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(self.last_modified))
    }
}

#[derive(Debug, Default)]
struct State {
    /// Objects by bucket, then key. A lake's bucket appears here once it has been generated.
    buckets: BTreeMap<String, BTreeMap<String, StoredObject>>,
    /// How many objects were put so far.
    puts: u64,
    /// Multipart uploads in progress, by id: bucket, key and parts by number.
    uploads: BTreeMap<String, (String, String, ObjectAttributes, BTreeMap<i32, Bytes>)>,
    /// Uploads started so far, for their ids.
    started_uploads: u64,
}

/// One region's object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreFake {
    config: Arc<ObjectStoreConfig>,
    region: ProviderRegion,
    iam: Iam,
    state: Arc<Mutex<State>>,
}

impl ObjectStoreFake {
    /// A store for `config` in `region`; nothing is generated yet.
    pub fn new(config: ObjectStoreConfig, region: ProviderRegion, iam: Iam) -> Self {
        let mut state = State::default();
        for b in &config.buckets {
            state.buckets.entry(b.clone()).or_default();
        }
        Self {
            config: Arc::new(config),
            region,
            iam,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The HTTP service: path-style S3 with SigV4 verification.
    pub fn service(&self) -> S3Service {
        let mut builder = S3ServiceBuilder::new(self.clone());
        builder.set_auth(IamAuth(self.iam.clone()));
        // Signatures carry the client's wall-clock date; simulated time is not the wall clock,
        // so the skew check must not fail a run that pauses or runs faster than real time.
        let mut config = S3Config::default();
        config.presigned_url_max_skew_time_secs = u32::MAX;
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
        builder.build()
    }

    /// How many lakes have had their files generated.
    pub fn generated_lakes(&self) -> usize {
        let state = self.lock();
        state
            .buckets
            .keys()
            .filter(|b| self.config.lakes.lake_of_bucket(b).is_some())
            .count()
    }

    /// Put objects are stamped a second apart, after all generated data: distinct, ordered,
    /// and independent of the wall clock.
    fn next_put_time(&self) -> u64 {
        let mut state = self.lock();
        state.puts += 1;
        LAST_MODIFIED_SECS + 400 * 86_400 + state.puts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn identity(&self, access_key: Option<&str>) -> Option<Identity> {
        access_key.and_then(|k| self.iam.identity(k, self.region.now()))
    }

    fn account_of(&self, access_key: Option<&str>) -> String {
        self.identity(access_key)
            .map_or_else(|| "anonymous".to_string(), |i| i.account)
    }

    /// Runs `f` on the bucket's objects, generating a lake of this region on first touch.
    fn with_bucket<R>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut BTreeMap<String, StoredObject>) -> R,
    ) -> S3Result<R> {
        let mut state = self.lock();
        if !state.buckets.contains_key(bucket) {
            let lakes = &self.config.lakes;
            let lake = lakes
                .lake_of_bucket(bucket)
                .filter(|&i| lakes.region(i) == self.config.region)
                .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))?;
            let objects = lakes
                .keys()
                .into_iter()
                .enumerate()
                .map(|(j, key)| {
                    let data = lakes.generate(lake, &key);
                    // Each file was written when its day of telemetry closed, lakes a second apart.
                    let written = LAST_MODIFIED_SECS + (j as u64 + 1) * 86_400 + u64::from(lake);
                    let parquet = ObjectAttributes {
                        content_type: Some("application/vnd.apache.parquet".into()),
                        ..ObjectAttributes::default()
                    };
                    (
                        key,
                        StoredObject::new(data, written).with_attributes(parquet),
                    )
                })
                .collect();
            state.buckets.insert(bucket.to_string(), objects);
        }
        Ok(f(state.buckets.get_mut(bucket).expect("inserted above")))
    }

    /// The provider's decision on a call: frozen accounts are refused, quotas and prefix
    /// limits answer `SlowDown`, and admitted calls take their time.
    async fn admit(
        &self,
        creds: Option<&str>,
        api: &str,
        bucket: &str,
        key: &str,
        write: bool,
    ) -> S3Result<()> {
        let Some(identity) = self.identity(creds) else {
            return Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ));
        };
        let account = identity.account.clone();
        let now = self.region.now();
        let access = S3Access { bucket, key, write };
        let decision = self.region.model().admit_s3(&account, api, access, now);
        match decision {
            Admission::Proceed { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if self.iam.may_read(&identity, bucket) {
                    Ok(())
                } else {
                    Err(s3_error!(AccessDenied, "Access Denied"))
                }
            }
            Admission::Frozen => Err(s3_error!(
                AccountProblem,
                "There is a problem with your AWS account that prevents the action from completing successfully. Contact AWS Support for further assistance."
            )),
            Admission::Throttled => Err(s3_error!(SlowDown, "Please reduce your request rate.")),
            Admission::Shed | Admission::TimedOut { .. } => Err(s3_error!(
                ServiceUnavailable,
                "Please reduce your request rate."
            )),
        }
    }

    /// The object a copy reads, if the caller may read it.
    fn copy_source(&self, creds: Option<&str>, source: &CopySource) -> S3Result<StoredObject> {
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(s3_error!(
                NotImplemented,
                "Copies from access points are not supported"
            ));
        };
        match self.identity(creds) {
            Some(who) if self.iam.may_read(&who, bucket) => self.get(bucket, key),
            _ => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }

    fn get(&self, bucket: &str, key: &str) -> S3Result<StoredObject> {
        self.with_bucket(bucket, |objects| objects.get(key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist."))
    }

    fn call(
        &self,
        api: &'static str,
        action: &'static str,
        bucket: &str,
        key: Option<&str>,
        creds: Option<&str>,
    ) -> ProviderCall {
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        ProviderCall::start(
            self.account_of(creds),
            &self.config.region,
            "s3",
            api,
            creds.unwrap_or("anonymous"),
            action,
            resource,
        )
    }
}

/// Reads a request body whole.
async fn read_body(body: Option<StreamingBlob>) -> S3Result<Bytes> {
    let mut data = Vec::new();
    if let Some(mut body) = body {
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| S3Error::with_message(S3ErrorCode::IncompleteBody, e.to_string()))?
        {
            data.extend_from_slice(&chunk);
        }
    }
    Ok(Bytes::from(data))
}

/// The conditional headers of a GET or HEAD.
struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// RFC 9110's order, as S3 applies it: `If-Match` (else `If-Unmodified-Since`) fails with
    /// 412; then `If-None-Match` (else `If-Modified-Since`) answers 304.
    fn check(&self, obj: &StoredObject) -> S3Result<()> {
        let matches = |c: &ETagCondition| match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) => e.value() == obj.e_tag,
        };
        let modified = obj.last_modified();
        let precondition_failed = match (self.if_match, self.if_unmodified_since) {
            (Some(c), _) => !matches(c),
            (None, Some(since)) => modified > *since,
            (None, None) => false,
        };
        if precondition_failed {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let not_modified = match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => matches(c),
            (None, Some(since)) => modified <= *since,
            (None, None) => false,
        };
        if not_modified {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
        Ok(())
    }
}

/// Secrets come from the region's identity store, so the session keys IMDS and STS issue can
/// sign requests too.
#[derive(Debug, Clone)]
struct IamAuth(Iam);

#[async_trait::async_trait]
impl S3Auth for IamAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0
            .secret(access_key)
            .map(SecretKey::from)
            .ok_or_else(|| {
                s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })
    }
}

fn outcome_of<T>(result: &S3Result<T>) -> CallOutcome {
    result
        .as_ref()
        .map_or_else(error_outcome, |_| CallOutcome::Ok)
}

fn error_outcome(e: &S3Error) -> CallOutcome {
    match e.code() {
        S3ErrorCode::SlowDown => CallOutcome::Throttled,
        S3ErrorCode::AccountProblem | S3ErrorCode::AllAccessDisabled => CallOutcome::Frozen,
        code => CallOutcome::Error(code.as_str().to_string()),
    }
}

fn access_key<T>(req: &S3Request<T>) -> Option<String> {
    req.credentials.as_ref().map(|c| c.access_key.clone())
}

#[async_trait::async_trait]
impl S3 for ObjectStoreFake {
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let range = req
            .headers
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let call = self
            .call(
                "GetObject",
                "s3:GetObject",
                &input.bucket,
                Some(&input.key),
                ak.as_deref(),
            )
            .with_range(range);
        let admitted = self
            .admit(ak.as_deref(), "GetObject", &input.bucket, &input.key, false)
            .await;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let result = admitted
            .and_then(|()| self.get(&input.bucket, &input.key))
            .and_then(|obj| conditions.check(&obj).map(|()| obj))
            .and_then(|obj| {
                let len = obj.data.len() as u64;
                let (body, content_range) = match input.range {
                    Some(range) => {
                        let r = range.check(len)?;
                        let body = obj.data.slice(r.start as usize..r.end as usize);
                        let content_range =
                            format!("bytes {}-{}/{len}", r.start, r.end.saturating_sub(1));
                        (body, Some(content_range))
                    }
                    None => (obj.data.clone(), None),
                };
                Ok((
                    body,
                    content_range,
                    obj.e_tag.clone(),
                    obj.last_modified(),
                    obj.attributes.clone(),
                ))
            });
        call.finish(
            outcome_of(&result),
            result.as_ref().map_or(0, |r| r.0.len() as u64),
        );
        let (body, content_range, e_tag, last_modified, attributes) = result?;
        let output = GetObjectOutput {
            content_length: Some(body.len() as i64),
            body: Some(StreamingBlob::from(s3s::Body::from(body))),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(e_tag)),
            last_modified: Some(last_modified),
            content_type: Some(attributes.content_type()),
            metadata: attributes.metadata(),
            cache_control: attributes.cache_control,
            content_disposition: attributes.content_disposition,
            content_encoding: attributes.content_encoding,
            content_language: attributes.content_language,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "HeadObject",
            "s3:GetObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(
                ak.as_deref(),
                "HeadObject",
                &input.bucket,
                &input.key,
                false,
            )
            .await;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let result = admitted
            .and_then(|()| self.get(&input.bucket, &input.key))
            .and_then(|obj| conditions.check(&obj).map(|()| obj));
        call.finish(outcome_of(&result), 0);
        let obj = result?;
        let output = HeadObjectOutput {
            content_length: Some(obj.data.len() as i64),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(obj.last_modified()),
            e_tag: Some(ETag::Strong(obj.e_tag)),
            content_type: Some(obj.attributes.content_type()),
            metadata: obj.attributes.metadata(),
            cache_control: obj.attributes.cache_control,
            content_disposition: obj.attributes.content_disposition,
            content_encoding: obj.attributes.content_encoding,
            content_language: obj.attributes.content_language,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "ListObjectsV2",
            "s3:ListBucket",
            &input.bucket,
            None,
            ak.as_deref(),
        );
        let prefix = input.prefix.clone().unwrap_or_default();
        let admitted = self
            .admit(
                ak.as_deref(),
                "ListObjectsV2",
                &input.bucket,
                &prefix,
                false,
            )
            .await;
        let result = admitted
            .and_then(|()| self.with_bucket(&input.bucket, |objects| list_page(objects, &input)));
        call.finish(outcome_of(&result), 0);
        Ok(S3Response::new(result?))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "PutObject",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(ak.as_deref(), "PutObject", &input.bucket, &input.key, true)
            .await;
        if let Err(e) = admitted {
            call.finish(error_outcome(&e), 0);
            return Err(e);
        }
        let data = match read_body(input.body).await {
            Ok(data) => data,
            Err(e) => {
                call.finish(error_outcome(&e), 0);
                return Err(e);
            }
        };
        let attributes = ObjectAttributes::from_upload(
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.content_type,
            input.metadata,
        );
        let object = StoredObject::new(data, self.next_put_time()).with_attributes(attributes);
        let (e_tag, size) = (object.e_tag.clone(), object.data.len() as i64);
        let (if_match, if_none_match) = (input.if_match, input.if_none_match);
        // The condition and the write are one step under the store's lock.
        let result = self
            .with_bucket(&input.bucket, |objects| {
                let current = objects.get(&input.key);
                let conflict = match (&if_none_match, &if_match, current) {
                    (Some(_), _, Some(_)) => true,
                    (_, Some(ETagCondition::ETag(want)), Some(obj)) => want.value() != obj.e_tag,
                    (_, Some(_), None) => true,
                    _ => false,
                };
                if conflict {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
                objects.insert(input.key.clone(), object);
                Ok(())
            })
            .and_then(|r| r);
        call.finish(outcome_of(&result), size as u64);
        result?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(e_tag)),
            size: Some(size),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "DeleteObject",
            "s3:DeleteObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(
                ak.as_deref(),
                "DeleteObject",
                &input.bucket,
                &input.key,
                true,
            )
            .await;
        // Deleting a key that is not there succeeds, as on S3.
        let result = admitted.and_then(|()| {
            self.with_bucket(&input.bucket, |objects| {
                objects.remove(&input.key);
            })
        });
        call.finish(outcome_of(&result), 0);
        result?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "DeleteObjects",
            "s3:DeleteObject",
            &input.bucket,
            None,
            ak.as_deref(),
        );
        let admitted = self
            .admit(ak.as_deref(), "DeleteObjects", &input.bucket, "", true)
            .await;
        let keys: Vec<String> = input.delete.objects.iter().map(|o| o.key.clone()).collect();
        let result = admitted.and_then(|()| {
            self.with_bucket(&input.bucket, |objects| {
                for key in &keys {
                    objects.remove(key);
                }
            })
        });
        call.finish(outcome_of(&result), 0);
        result?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let deleted = (!quiet).then(|| {
            keys.into_iter()
                .map(|key| DeletedObject {
                    key: Some(key),
                    ..Default::default()
                })
                .collect()
        });
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "CopyObject",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(ak.as_deref(), "CopyObject", &input.bucket, &input.key, true)
            .await;
        let result = admitted
            .and_then(|()| self.copy_source(ak.as_deref(), &input.copy_source))
            .and_then(|source| {
                let copy = StoredObject::new(source.data, self.next_put_time())
                    .with_attributes(source.attributes);
                let out = (copy.e_tag.clone(), copy.last_modified());
                self.with_bucket(&input.bucket, |objects| {
                    objects.insert(input.key.clone(), copy);
                })
                .map(|()| out)
            });
        call.finish(outcome_of(&result), 0);
        let (e_tag, last_modified) = result?;
        let copied = CopyObjectResult {
            e_tag: Some(ETag::Strong(e_tag)),
            last_modified: Some(last_modified),
            ..Default::default()
        };
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(copied),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "CreateMultipartUpload",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(
                ak.as_deref(),
                "CreateMultipartUpload",
                &input.bucket,
                &input.key,
                true,
            )
            .await;
        let attributes = ObjectAttributes::from_upload(
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.content_type,
            input.metadata,
        );
        let result = admitted
            .and_then(|()| self.with_bucket(&input.bucket, |_| ()))
            .map(|()| {
                let mut state = self.lock();
                state.started_uploads += 1;
                let id = format!("upload-{}", state.started_uploads);
                state.uploads.insert(
                    id.clone(),
                    (
                        input.bucket.clone(),
                        input.key.clone(),
                        attributes,
                        BTreeMap::new(),
                    ),
                );
                id
            });
        call.finish(outcome_of(&result), 0);
        let upload_id = result?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "UploadPart",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(ak.as_deref(), "UploadPart", &input.bucket, &input.key, true)
            .await;
        let result = match admitted {
            Ok(()) => read_body(input.body).await,
            Err(e) => Err(e),
        }
        .and_then(|data| {
            let e_tag = hex::encode(&Sha256::digest(&data)[..16]);
            let mut state = self.lock();
            let (_, _, _, parts) = state
                .uploads
                .get_mut(&input.upload_id)
                .filter(|(b, k, _, _)| *b == input.bucket && *k == input.key)
                .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
            parts.insert(input.part_number, data);
            Ok(e_tag)
        });
        call.finish(outcome_of(&result), 0);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(result?)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "UploadPartCopy",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        if input.copy_source_range.is_some() {
            call.finish(CallOutcome::Error("NotImplemented".into()), 0);
            return Err(s3_error!(
                NotImplemented,
                "x-amz-copy-source-range is not supported"
            ));
        }
        let admitted = self
            .admit(
                ak.as_deref(),
                "UploadPartCopy",
                &input.bucket,
                &input.key,
                true,
            )
            .await;
        let result = admitted
            .and_then(|()| self.copy_source(ak.as_deref(), &input.copy_source))
            .and_then(|source| {
                let mut state = self.lock();
                let (_, _, _, parts) = state
                    .uploads
                    .get_mut(&input.upload_id)
                    .filter(|(b, k, _, _)| *b == input.bucket && *k == input.key)
                    .ok_or_else(|| {
                        s3_error!(NoSuchUpload, "The specified upload does not exist.")
                    })?;
                parts.insert(input.part_number, source.data.clone());
                Ok((source.e_tag.clone(), source.last_modified()))
            });
        call.finish(outcome_of(&result), 0);
        let (e_tag, last_modified) = result?;
        let part = CopyPartResult {
            e_tag: Some(ETag::Strong(e_tag)),
            last_modified: Some(last_modified),
            ..Default::default()
        };
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(part),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "CompleteMultipartUpload",
            "s3:PutObject",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(
                ak.as_deref(),
                "CompleteMultipartUpload",
                &input.bucket,
                &input.key,
                true,
            )
            .await;
        let wanted: Vec<i32> = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(|parts| parts.iter().filter_map(|p| p.part_number).collect())
            .unwrap_or_default();
        let result = admitted.and_then(|()| {
            let mut state = self.lock();
            let (bucket, key, attributes, parts) = state
                .uploads
                .remove(&input.upload_id)
                .filter(|(b, k, _, _)| *b == input.bucket && *k == input.key)
                .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
            let mut data = Vec::new();
            for n in &wanted {
                let part = parts.get(n).ok_or_else(|| {
                    s3_error!(
                        InvalidPart,
                        "One or more of the specified parts could not be found."
                    )
                })?;
                data.extend_from_slice(part);
            }
            drop(state);
            let object = StoredObject::new(Bytes::from(data), self.next_put_time())
                .with_attributes(attributes);
            let e_tag = object.e_tag.clone();
            // `If-None-Match: *` makes completion a create-if-absent, checked with the write.
            let create_only = input.if_none_match.is_some();
            self.with_bucket(&bucket, |objects| {
                if create_only && objects.contains_key(&key) {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
                objects.insert(key, object);
                Ok(e_tag)
            })
            .and_then(|r| r)
        });
        call.finish(outcome_of(&result), 0);
        let e_tag = result?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let ak = access_key(&req);
        let input = req.input;
        let call = self.call(
            "AbortMultipartUpload",
            "s3:AbortMultipartUpload",
            &input.bucket,
            Some(&input.key),
            ak.as_deref(),
        );
        let admitted = self
            .admit(
                ak.as_deref(),
                "AbortMultipartUpload",
                &input.bucket,
                &input.key,
                true,
            )
            .await;
        let result = admitted.and_then(|()| {
            self.lock()
                .uploads
                .remove(&input.upload_id)
                .map(|_| ())
                .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))
        });
        call.finish(outcome_of(&result), 0);
        result?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// One page of a listing, with S3's semantics for prefix, delimiter, start-after and tokens.
fn list_page(
    objects: &BTreeMap<String, StoredObject>,
    input: &ListObjectsV2Input,
) -> ListObjectsV2Output {
    let prefix = input.prefix.clone().unwrap_or_default();
    let max_keys = input
        .max_keys
        .map_or(MAX_KEYS, |m| (m.max(0) as usize).min(MAX_KEYS));
    // The continuation token is the last key (or common prefix) of the previous page.
    let after = input
        .continuation_token
        .clone()
        .or_else(|| input.start_after.clone())
        .unwrap_or_default();
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last = None;
    let mut truncated = false;
    // Keys under the prefix are one contiguous run of the sorted map.
    let start = if after >= prefix {
        Bound::Excluded(&after)
    } else {
        Bound::Included(&prefix)
    };
    for (key, obj) in objects.range::<String, _>((start, Bound::Unbounded)) {
        if !key.starts_with(&prefix) {
            break;
        }
        let common = input
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|i| key[..prefix.len() + i + d.len()].to_string())
            });
        if let Some(cp) = &common
            && (prefixes.last() == Some(cp) || after.starts_with(cp.as_str()))
        {
            continue;
        }
        if contents.len() + prefixes.len() == max_keys {
            truncated = true;
            break;
        }
        match common {
            Some(cp) => {
                last = Some(cp.clone());
                prefixes.push(cp);
            }
            None => {
                last = Some(key.clone());
                contents.push(Object {
                    key: Some(key.clone()),
                    size: Some(obj.data.len() as i64),
                    e_tag: Some(ETag::Strong(obj.e_tag.clone())),
                    last_modified: Some(obj.last_modified()),
                    storage_class: Some(s3s::dto::ObjectStorageClass::from_static(
                        s3s::dto::ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
        }
    }
    let key_count = (contents.len() + prefixes.len()) as i32;
    ListObjectsV2Output {
        name: Some(input.bucket.clone()),
        prefix: Some(prefix),
        delimiter: input.delimiter.clone(),
        max_keys: Some(max_keys as i32),
        key_count: Some(key_count),
        is_truncated: Some(truncated),
        continuation_token: input.continuation_token.clone(),
        next_continuation_token: if truncated { last } else { None },
        start_after: input.start_after.clone(),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then(|| {
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect()
        }),
        ..Default::default()
    }
}
