//! Identities and roles: who holds which keys, which roles exist, who may assume them, and
//! what a role may read.
//!
//! The system runs as the instance role `stampede-worker` in its own account; IMDS hands out
//! that role's session keys. Each lake is a tenant account with one role,
//! `stampede-lake-reader`, whose trust policy admits only the system's role, and which may read
//! only its own lake's bucket.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::lakes::LakeDirectory;

/// The account the system under test runs in.
pub const SYSTEM_ACCOUNT: &str = "100000000001";
/// The system's instance role.
pub const SYSTEM_ROLE: &str = "stampede-worker";
/// The role every lake account has for the system to assume.
pub const LAKE_ROLE: &str = "stampede-lake-reader";

/// Someone who can sign requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// The 12-digit account.
    pub account: String,
    /// The principal's ARN (`arn:aws:iam::…:user/…` or `arn:aws:sts::…:assumed-role/…`).
    pub arn: String,
    /// The role ARN behind a role session.
    pub role_arn: Option<String>,
    /// When temporary credentials expire, as time since the provider started.
    pub expires: Option<Duration>,
}

/// The account of lake `i`.
pub fn lake_account(i: u32) -> String {
    format!("3{i:011}")
}

/// The ARN of lake `i`'s role.
pub fn lake_role_arn(i: u32) -> String {
    format!("arn:aws:iam::{}:role/{LAKE_ROLE}", lake_account(i))
}

/// The ARN of the system's instance role.
pub fn system_role_arn() -> String {
    format!("arn:aws:iam::{SYSTEM_ACCOUNT}:role/{SYSTEM_ROLE}")
}

/// Why an AssumeRole is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssumeError {
    /// The role does not exist.
    #[error("role {0} does not exist")]
    NoSuchRole(String),
    /// The role's trust policy does not admit the caller.
    #[error("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}")]
    NotTrusted {
        /// The caller's ARN.
        caller: String,
        /// The role's ARN.
        role: String,
    },
}

#[derive(Debug, Default)]
struct IamState {
    /// Every identity, by access key id.
    identities: BTreeMap<String, Identity>,
    /// Keys issued so far, for deterministic names.
    issued: u64,
}

/// The region's identity store, shared by IMDS, STS and the data services.
#[derive(Debug, Clone)]
pub struct Iam {
    seed: u64,
    lakes: LakeDirectory,
    state: Arc<Mutex<IamState>>,
}

impl Iam {
    /// A store knowing the world's lakes and these long-lived identities.
    pub fn new(seed: u64, lakes: LakeDirectory, users: Vec<Identity>) -> Self {
        let identities = users
            .into_iter()
            .map(|u| (u.access_key_id.clone(), u))
            .collect();
        Self {
            seed,
            lakes,
            state: Arc::new(Mutex::new(IamState {
                identities,
                issued: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, IamState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity holding `access_key_id`, if its keys are valid at `now`.
    pub fn identity(&self, access_key_id: &str, now: Duration) -> Option<Identity> {
        self.lock()
            .identities
            .get(access_key_id)
            .filter(|i| i.expires.is_none_or(|e| now < e))
            .cloned()
    }

    /// Every identity's secret, for signature checks.
    pub fn secret(&self, access_key_id: &str) -> Option<String> {
        self.lock()
            .identities
            .get(access_key_id)
            .map(|i| i.secret_access_key.clone())
    }

    /// Issues session keys for `role_arn` as `session`, valid for `lifetime` from `now`.
    pub fn issue(
        &self,
        role_arn: &str,
        session: &str,
        now: Duration,
        lifetime: Duration,
    ) -> Identity {
        let mut state = self.lock();
        state.issued += 1;
        let n = state.issued;
        let digest = |what: &str| {
            let mut h = Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(what.as_bytes());
            h.update(n.to_le_bytes());
            hex::encode(h.finalize())
        };
        let account = role_arn.split(':').nth(4).unwrap_or("").to_string();
        let role_name = role_arn.rsplit('/').next().unwrap_or("");
        let identity = Identity {
            access_key_id: format!("ASIA{}", &digest("akid")[..16].to_uppercase()),
            secret_access_key: digest("secret")[..40].to_string(),
            session_token: Some(format!("FwoGZXIvYXdzE{}", digest("token"))),
            arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
            account,
            role_arn: Some(role_arn.to_string()),
            expires: Some(now + lifetime),
        };
        state
            .identities
            .insert(identity.access_key_id.clone(), identity.clone());
        identity
    }

    /// Checks an AssumeRole of `role_arn` by `caller` against the role's trust policy, which
    /// admits the system's principals (its instance role and its users) and no one else.
    pub fn may_assume(&self, caller: &Identity, role_arn: &str) -> Result<u32, AssumeError> {
        let lake = self
            .lake_of_role(role_arn)
            .ok_or_else(|| AssumeError::NoSuchRole(role_arn.to_string()))?;
        let system_user = caller.role_arn.is_none() && caller.account == SYSTEM_ACCOUNT;
        if system_user || caller.role_arn.as_deref() == Some(system_role_arn().as_str()) {
            Ok(lake)
        } else {
            Err(AssumeError::NotTrusted {
                caller: caller.arn.clone(),
                role: role_arn.to_string(),
            })
        }
    }

    /// The lake whose role this is.
    pub fn lake_of_role(&self, role_arn: &str) -> Option<u32> {
        let rest = role_arn.strip_prefix("arn:aws:iam::")?;
        let (account, role) = rest.split_once(":role/")?;
        let i: u32 = account.strip_prefix('3')?.parse().ok()?;
        (role == LAKE_ROLE && i < self.lakes.count && lake_account(i) == account).then_some(i)
    }

    /// Whether `who` may read `bucket`: a lake role only its own lake's bucket; the system's
    /// own role and long-lived users any bucket of their account's, here every bucket.
    pub fn may_read(&self, who: &Identity, bucket: &str) -> bool {
        match who.role_arn.as_deref().and_then(|r| self.lake_of_role(r)) {
            Some(lake) => self.lakes.bucket(lake) == bucket,
            None => who.role_arn.is_none() || who.account == SYSTEM_ACCOUNT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iam() -> Iam {
        let lakes = LakeDirectory {
            seed: 1,
            count: 3,
            tenants: 3,
            regions: vec!["r".into()],
            files_per_lake: 1,
            rows_per_file: 1,
        };
        Iam::new(1, lakes, Vec::new())
    }

    #[test]
    fn only_the_system_role_may_assume_a_lake_role_and_only_reads_its_lake() {
        let iam = iam();
        let system = iam.issue(
            &system_role_arn(),
            "i-0",
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert_eq!(iam.may_assume(&system, &lake_role_arn(2)), Ok(2));
        let lake1 = iam.issue(
            &lake_role_arn(1),
            "q",
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        assert!(matches!(
            iam.may_assume(&lake1, &lake_role_arn(2)),
            Err(AssumeError::NotTrusted { .. })
        ));
        assert!(matches!(
            iam.may_assume(&system, &lake_role_arn(3)),
            Err(AssumeError::NoSuchRole(_))
        ));
        assert!(iam.may_read(&lake1, "lake-00001"));
        assert!(!iam.may_read(&lake1, "lake-00002"));
    }

    #[test]
    fn session_keys_expire_and_are_deterministic() {
        let a = iam().issue(
            &system_role_arn(),
            "s",
            Duration::ZERO,
            Duration::from_secs(10),
        );
        let b = iam().issue(
            &system_role_arn(),
            "s",
            Duration::ZERO,
            Duration::from_secs(10),
        );
        assert_eq!(a, b);
        let iam = iam();
        let c = iam.issue(
            &system_role_arn(),
            "s",
            Duration::ZERO,
            Duration::from_secs(10),
        );
        assert!(
            iam.identity(&c.access_key_id, Duration::from_secs(9))
                .is_some()
        );
        assert!(
            iam.identity(&c.access_key_id, Duration::from_secs(10))
                .is_none()
        );
    }
}
