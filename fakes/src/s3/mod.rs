//! The object store: an S3-compatible service (REST/XML, SigV4) built on `s3s`.
//!
//! It serves the lakes of its region, generating each lake's files the first time the lake is
//! touched, and the buckets accounts create or the world starts with. Every request passes the
//! gate (`gate.rs`: claims, admission, authorisation) before its operation runs, and is
//! reported as one `stampede::provider` call event.

mod gate;
mod objects;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use s3s::auth::{S3Auth, SecretKey};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Bucket, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CopyObjectResult,
    CopyPartResult, CopySource, CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag,
    ETagCondition, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput,
    HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Owner, PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use sha2::{Digest, Sha256};

pub use gate::Reported;
use gate::{Caller, Gate};
use objects::{Conditions, ObjectAttributes, StoredObject, list_page, read_body};

use crate::iam::{BucketAccess, Iam, SYSTEM_ACCOUNT, lake_account};
use crate::lakes::LakeDirectory;
use crate::provider::ProviderRegion;

/// When every generated object was "last modified": the data epoch, 2026-01-01T00:00:00Z.
const LAST_MODIFIED_SECS: u64 = 1_767_225_600;

/// Configuration of one region's object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    /// The region served.
    pub region: String,
    /// The world's lakes; only those of `region` are served.
    pub lakes: LakeDirectory,
    /// Extra empty buckets that exist from the start, owned by the system's account (its
    /// config bucket, say).
    pub buckets: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Objects by bucket, then key. A lake's bucket appears here once it has been generated.
    buckets: BTreeMap<String, BTreeMap<String, StoredObject>>,
    /// The owner account of each bucket that is not a lake's, and when it was created.
    owned: BTreeMap<String, (String, u64)>,
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
            state
                .owned
                .insert(b.clone(), (SYSTEM_ACCOUNT.to_string(), LAST_MODIFIED_SECS));
        }
        Self {
            config: Arc::new(config),
            region,
            iam,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The HTTP service: path-style S3 with SigV4 verification, every request through the
    /// gate and reported as a provider call.
    pub fn service(&self) -> Reported {
        let mut builder = S3ServiceBuilder::new(self.clone());
        builder.set_auth(IamAuth(self.iam.clone()));
        builder.set_access(Gate(self.clone()));
        // s3s would judge the signing time on the host's wall clock; the gate judges it on the
        // provider's (virtual in a simulation), so s3s's own check is off.
        let mut config = S3Config::default();
        config.presigned_url_max_skew_time_secs = u32::MAX;
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
        Reported {
            inner: builder.build(),
            store: self.clone(),
        }
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

    /// The lake of this region a bucket holds.
    fn lake(&self, bucket: &str) -> Option<u32> {
        let lakes = &self.config.lakes;
        lakes
            .lake_of_bucket(bucket)
            .filter(|&i| lakes.region(i) == self.config.region)
    }

    /// The account owning `bucket`, if it exists here.
    fn owner(&self, bucket: &str) -> Option<String> {
        if let Some(lake) = self.lake(bucket) {
            return Some(lake_account(lake));
        }
        self.lock()
            .owned
            .get(bucket)
            .map(|(owner, _)| owner.clone())
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
            let lake = self
                .lake(bucket)
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

    /// The object a copy reads, if the caller may read its bucket.
    fn copy_source(&self, caller: Option<&Caller>, source: &CopySource) -> S3Result<StoredObject> {
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(s3_error!(
                NotImplemented,
                "Copies from access points are not supported"
            ));
        };
        let owner = self
            .owner(bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))?;
        match caller {
            Some(Caller(who))
                if self
                    .iam
                    .may_use_bucket(who, bucket, &owner, BucketAccess::Read) =>
            {
                self.get(bucket, key)
            }
            _ => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }

    fn get(&self, bucket: &str, key: &str) -> S3Result<StoredObject> {
        self.with_bucket(bucket, |objects| objects.get(key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist."))
    }

    /// Stores part `n` of upload `id` for `bucket`/`key`.
    fn put_part(&self, id: &str, bucket: &str, key: &str, n: i32, data: Bytes) -> S3Result<()> {
        let mut state = self.lock();
        let (_, _, _, parts) = state
            .uploads
            .get_mut(id)
            .filter(|(b, k, _, _)| b == bucket && k == key)
            .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
        parts.insert(n, data);
        Ok(())
    }
}

/// Secrets come from the region's identity store, so the session keys IMDS and STS issue can
/// sign requests too. Expired keys keep their secrets: the gate tells an expired key from an
/// unknown one.
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

fn timestamp(unix_secs: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(unix_secs))
}

/// A bucket name S3 accepts: 3 to 63 lowercase letters, digits, dots and hyphens, starting and
/// ending with a letter or digit.
fn valid_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

#[async_trait::async_trait]
impl S3 for ObjectStoreFake {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = req.extensions.get::<Caller>().map(|c| c.0.account.clone());
        let bucket = req.input.bucket;
        if !valid_bucket_name(&bucket) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid."
            ));
        }
        let account = caller.ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        match self.owner(&bucket) {
            Some(owner) if owner == account => Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            )),
            Some(_) => Err(s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
            )),
            None if self.config.lakes.lake_of_bucket(&bucket).is_some() => Err(s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
            )),
            None => {
                let created = self.next_put_time();
                let mut state = self.lock();
                state.owned.insert(bucket.clone(), (account, created));
                state.buckets.entry(bucket.clone()).or_default();
                Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{bucket}")),
                }))
            }
        }
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        if self.lake(&bucket).is_some() {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let mut state = self.lock();
        if state.buckets.get(&bucket).is_some_and(|o| !o.is_empty()) {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        state.buckets.remove(&bucket);
        state.owned.remove(&bucket);
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        // The gate found the bucket and let the caller read it.
        let _ = req;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let account = req
            .extensions
            .get::<Caller>()
            .map(|c| c.0.account.clone())
            .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        let mut buckets: Vec<Bucket> = self
            .lock()
            .owned
            .iter()
            .filter(|(_, (owner, _))| *owner == account)
            .map(|(name, (_, created))| Bucket {
                name: Some(name.clone()),
                creation_date: Some(timestamp(*created)),
                bucket_region: Some(self.config.region.clone()),
            })
            .collect();
        // A lake account owns its lake's bucket, when the lake lives here.
        if let Some(lake) = self
            .iam
            .lake_of_account(&account)
            .filter(|&i| self.config.lakes.region(i) == self.config.region)
        {
            buckets.push(Bucket {
                name: Some(self.config.lakes.bucket(lake)),
                creation_date: Some(timestamp(LAST_MODIFIED_SECS)),
                bucket_region: Some(self.config.region.clone()),
            });
        }
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                id: Some(account.clone()),
                display_name: Some(account),
            }),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let obj = self.get(&input.bucket, &input.key)?;
        conditions.check(&obj)?;
        let len = obj.data.len() as u64;
        let (body, content_range) = match input.range {
            Some(range) => {
                let r = range.check(len)?;
                let body = obj.data.slice(r.start as usize..r.end as usize);
                let content_range = format!("bytes {}-{}/{len}", r.start, r.end.saturating_sub(1));
                (body, Some(content_range))
            }
            None => (obj.data.clone(), None),
        };
        let attributes = obj.attributes.clone();
        let output = GetObjectOutput {
            content_length: Some(body.len() as i64),
            body: Some(StreamingBlob::from(s3s::Body::from(body))),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(obj.e_tag.clone())),
            last_modified: Some(obj.last_modified()),
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
        let input = req.input;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let obj = self.get(&input.bucket, &input.key)?;
        conditions.check(&obj)?;
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
        let input = req.input;
        let page = self.with_bucket(&input.bucket, |objects| list_page(objects, &input))?;
        Ok(S3Response::new(page))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let data = read_body(input.body).await?;
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
        self.with_bucket(&input.bucket, |objects| {
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
        })??;
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
        let input = req.input;
        // Deleting a key that is not there succeeds, as on S3.
        self.with_bucket(&input.bucket, |objects| {
            objects.remove(&input.key);
        })?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let keys: Vec<String> = input.delete.objects.iter().map(|o| o.key.clone()).collect();
        self.with_bucket(&input.bucket, |objects| {
            for key in &keys {
                objects.remove(key);
            }
        })?;
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
        let source = self.copy_source(req.extensions.get::<Caller>(), &req.input.copy_source)?;
        let input = req.input;
        let copy =
            StoredObject::new(source.data, self.next_put_time()).with_attributes(source.attributes);
        let (e_tag, last_modified) = (copy.e_tag.clone(), copy.last_modified());
        self.with_bucket(&input.bucket, |objects| {
            objects.insert(input.key.clone(), copy);
        })?;
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
        let input = req.input;
        let attributes = ObjectAttributes::from_upload(
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.content_type,
            input.metadata,
        );
        self.with_bucket(&input.bucket, |_| ())?;
        let upload_id = {
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
        };
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
        let input = req.input;
        let data = read_body(input.body).await?;
        let e_tag = hex::encode(&Sha256::digest(&data)[..16]);
        self.put_part(
            &input.upload_id,
            &input.bucket,
            &input.key,
            input.part_number,
            data,
        )?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        if req.input.copy_source_range.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "x-amz-copy-source-range is not supported"
            ));
        }
        let source = self.copy_source(req.extensions.get::<Caller>(), &req.input.copy_source)?;
        let input = req.input;
        self.put_part(
            &input.upload_id,
            &input.bucket,
            &input.key,
            input.part_number,
            source.data.clone(),
        )?;
        let part = CopyPartResult {
            e_tag: Some(ETag::Strong(source.e_tag.clone())),
            last_modified: Some(source.last_modified()),
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
        let input = req.input;
        let wanted: Vec<i32> = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .map(|parts| parts.iter().filter_map(|p| p.part_number).collect())
            .unwrap_or_default();
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
        let object =
            StoredObject::new(Bytes::from(data), self.next_put_time()).with_attributes(attributes);
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
            Ok(())
        })??;
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
        self.lock()
            .uploads
            .remove(&req.input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}
