//! The customer data lakes: which exist, who owns them, where they live, and their Parquet
//! files, generated from the seed the first time they are read.
//!
//! Lake `i` is bucket `lake-{i:05}`, owned by tenant `tenant-{i mod tenants:02}`, in region
//! `regions[i mod regions]`. Its table is `telemetry/part-{j:05}.parquet` for each file `j`.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Where the generated telemetry starts: 2026-01-01T00:00:00Z, in milliseconds.
pub const DATA_EPOCH_MS: i64 = 1_767_225_600_000;

/// How long the telemetry of one file spans: one day.
const FILE_SPAN_MS: i64 = 86_400_000;

/// Domains seen in the telemetry, most frequent first (the generator skews towards the front).
const DOMAINS: [&str; 24] = [
    "example.com",
    "cdn.example.net",
    "api.github.com",
    "login.microsoftonline.com",
    "s3.amazonaws.com",
    "update.googleapis.com",
    "slack.com",
    "zoom.us",
    "pypi.org",
    "registry.npmjs.org",
    "crates.io",
    "docs.rs",
    "wikipedia.org",
    "stackoverflow.com",
    "news.ycombinator.com",
    "cloudflare.com",
    "bad-actor.example",
    "exfil.example.org",
    "c2.example.info",
    "pastebin.com",
    "dropbox.com",
    "drive.google.com",
    "telemetry.example.io",
    "ocsp.digicert.com",
];

/// The lakes of a world. Cheap to clone; generates nothing until asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeDirectory {
    /// Seed every file's contents derive from.
    pub seed: u64,
    /// How many lakes.
    pub count: u32,
    /// How many tenants own them.
    pub tenants: u32,
    /// Regions, in order; lake `i` lives in `regions[i mod len]`.
    pub regions: Vec<String>,
    /// Parquet files per lake.
    pub files_per_lake: u32,
    /// Rows per file.
    pub rows_per_file: u32,
}

impl LakeDirectory {
    /// The bucket of lake `i`.
    pub fn bucket(&self, i: u32) -> String {
        format!("lake-{i:05}")
    }

    /// The lake a bucket holds, if it is one of this world's.
    pub fn lake_of_bucket(&self, bucket: &str) -> Option<u32> {
        let digits = bucket.strip_prefix("lake-")?;
        if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i: u32 = digits.parse().ok()?;
        (i < self.count).then_some(i)
    }

    /// The tenant that owns lake `i`.
    pub fn tenant(&self, i: u32) -> String {
        tenant_name(i % self.tenants.max(1))
    }

    /// The external id lake `i`'s role requires of whoever assumes it: one per tenant, as a
    /// vendor hands each customer one to put in its roles' trust policies (the confused-deputy
    /// guard AWS documents for third parties). Derived from the seed, so a world's ids are
    /// not guessable from a tenant's name.
    pub fn external_id(&self, i: u32) -> String {
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(b"external-id/");
        h.update(self.tenant(i).as_bytes());
        format!("stampede-{}", &hex::encode(h.finalize())[..24])
    }

    /// The region lake `i` lives in.
    pub fn region(&self, i: u32) -> &str {
        &self.regions[i as usize % self.regions.len()]
    }

    /// The keys of lake `i`'s files, in order.
    pub fn keys(&self) -> Vec<String> {
        (0..self.files_per_lake)
            .map(|j| format!("telemetry/part-{j:05}.parquet"))
            .collect()
    }

    /// Generates one file of lake `lake`. Deterministic in (seed, lake, key).
    pub fn generate(&self, lake: u32, key: &str) -> Bytes {
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(self.bucket(lake).as_bytes());
        h.update(key.as_bytes());
        let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
        let file_index = key
            .rsplit_once("part-")
            .and_then(|(_, rest)| rest.trim_end_matches(".parquet").parse::<i64>().ok())
            .unwrap_or(0);
        let batch = telemetry_batch(
            &mut rng,
            self.rows_per_file as usize,
            DATA_EPOCH_MS + file_index * FILE_SPAN_MS,
        );
        let mut out = Vec::new();
        let props = WriterProperties::builder()
            .set_created_by("stampede-fakes".into())
            .build();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
            .expect("writer for an in-memory buffer");
        writer.write(&batch).expect("in-memory write");
        writer.close().expect("in-memory close");
        Bytes::from(out)
    }
}

/// The name of tenant `t`.
pub fn tenant_name(t: u32) -> String {
    format!("tenant-{t:02}")
}

/// The telemetry schema: `ts`, `src_ip`, `dst_ip`, `domain`, `sha256`, `bytes`.
pub fn telemetry_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("src_ip", DataType::Utf8, false),
        Field::new("dst_ip", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, false),
    ]))
}

fn telemetry_batch(rng: &mut ChaCha8Rng, rows: usize, start_ms: i64) -> RecordBatch {
    let mut ts = Vec::with_capacity(rows);
    let mut src = Vec::with_capacity(rows);
    let mut dst = Vec::with_capacity(rows);
    let mut domain = Vec::with_capacity(rows);
    let mut sha = Vec::with_capacity(rows);
    let mut bytes = Vec::with_capacity(rows);
    let mut t = start_ms;
    let step = (FILE_SPAN_MS / rows.max(1) as i64).max(1);
    for _ in 0..rows {
        t += rng.random_range(0..step * 2).min(FILE_SPAN_MS);
        ts.push(t);
        src.push(format!(
            "10.{}.{}.{}",
            rng.random_range(0..4u8),
            rng.random_range(0..=255u8),
            rng.random_range(1..=254u8)
        ));
        dst.push(format!(
            "{}.{}.{}.{}",
            rng.random_range(11..=223u8),
            rng.random_range(0..=255u8),
            rng.random_range(0..=255u8),
            rng.random_range(1..=254u8)
        ));
        // u³ skews towards the front of the list: a few domains dominate, as in real traffic.
        let u: f64 = rng.random();
        domain.push(DOMAINS[((u * u * u) * DOMAINS.len() as f64) as usize % DOMAINS.len()]);
        let digest: [u8; 32] = rng.random();
        sha.push(hex::encode(digest));
        // Log-uniform sizes between 64 B and 64 MiB.
        let exp: f64 = rng.random_range(6.0..26.0);
        bytes.push(2f64.powf(exp) as i64);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts)),
        Arc::new(StringArray::from(src)),
        Arc::new(StringArray::from(dst)),
        Arc::new(StringArray::from(domain)),
        Arc::new(StringArray::from(sha)),
        Arc::new(Int64Array::from(bytes)),
    ];
    RecordBatch::try_new(telemetry_schema(), columns).expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> LakeDirectory {
        LakeDirectory {
            seed: 7,
            count: 12,
            tenants: 3,
            regions: vec!["a".into(), "b".into()],
            files_per_lake: 2,
            rows_per_file: 50,
        }
    }

    #[test]
    fn names_round_trip() {
        let d = dir();
        assert_eq!(d.bucket(7), "lake-00007");
        assert_eq!(d.lake_of_bucket("lake-00007"), Some(7));
        assert_eq!(d.lake_of_bucket("lake-00012"), None);
        assert_eq!(d.lake_of_bucket("lake-7"), None);
        assert_eq!(d.tenant(4), "tenant-01");
        assert_eq!(d.region(3), "b");
    }

    #[test]
    fn generation_is_deterministic_and_seeded() {
        let d = dir();
        let key = &d.keys()[1];
        assert_eq!(d.generate(3, key), d.generate(3, key));
        assert_ne!(d.generate(3, key), d.generate(4, key));
        let other = LakeDirectory {
            seed: 8,
            ..d.clone()
        };
        assert_ne!(d.generate(3, key), other.generate(3, key));
    }
}
