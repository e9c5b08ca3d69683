//! Objects as the store keeps them: their bytes, ETag, time and the headers they keep from
//! their upload, and what a read asks of them: conditional headers, listing pages.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use s3s::dto::{
    CommonPrefix, ETag, ETagCondition, ListObjectsV2Input, ListObjectsV2Output, Object,
    StreamingBlob, Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use sha2::{Digest, Sha256};

/// Largest page ListObjectsV2 returns, as on S3.
const MAX_KEYS: usize = 1000;

#[derive(Debug, Clone)]
pub(super) struct StoredObject {
    pub(super) data: Bytes,
    pub(super) e_tag: String,
    /// Seconds since the Unix epoch.
    pub(super) last_modified: u64,
    pub(super) attributes: ObjectAttributes,
}

/// The headers an object keeps from its upload and returns on every read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ObjectAttributes {
    pub(super) cache_control: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) content_type: Option<String>,
    /// `x-amz-meta-*`, by name.
    pub(super) metadata: BTreeMap<String, String>,
}

impl ObjectAttributes {
    /// s3s carries user metadata in a `HashMap`; ours is ordered, so nothing we log or hash
    /// depends on its order.
    #[allow(clippy::disallowed_types)] // The s3s DTO's own map type, converted at once.
    pub(super) fn from_upload(
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
    pub(super) fn metadata(&self) -> Option<s3s::dto::Metadata> {
        (!self.metadata.is_empty()).then(|| self.metadata.clone().into_iter().collect())
    }

    /// The stored content type, or S3's default for objects uploaded without one.
    pub(super) fn content_type(&self) -> String {
        self.content_type
            .clone()
            .unwrap_or_else(|| "binary/octet-stream".into())
    }
}

impl StoredObject {
    pub(super) fn new(data: Bytes, last_modified: u64) -> Self {
        let e_tag = hex::encode(&Sha256::digest(&data)[..16]);
        Self {
            data,
            e_tag,
            last_modified,
            attributes: ObjectAttributes::default(),
        }
    }

    pub(super) fn with_attributes(mut self, attributes: ObjectAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    pub(super) fn last_modified(&self) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(self.last_modified))
    }
}

/// Reads a request body whole.
pub(super) async fn read_body(body: Option<StreamingBlob>) -> S3Result<Bytes> {
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
pub(super) struct Conditions<'a> {
    pub(super) if_match: Option<&'a ETagCondition>,
    pub(super) if_none_match: Option<&'a ETagCondition>,
    pub(super) if_modified_since: Option<&'a Timestamp>,
    pub(super) if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// RFC 9110's order, as S3 applies it: `If-Match` (else `If-Unmodified-Since`) fails with
    /// 412; then `If-None-Match` (else `If-Modified-Since`) answers 304.
    pub(super) fn check(&self, obj: &StoredObject) -> S3Result<()> {
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

/// One page of a listing, with S3's semantics for prefix, delimiter, start-after and tokens.
pub(super) fn list_page(
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
