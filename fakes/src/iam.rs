//! Identities and roles: who holds which keys, which roles exist, who may assume them, and
//! what each principal may do to a bucket or a catalog.
//!
//! The system runs in its own account, as the instance role `stampede-worker` (each instance
//! its own session, from its own IMDS) and as a long-lived user. Each lake is a tenant account
//! with one role, `stampede-lake-reader`, whose trust policy admits only the system's account
//! and only with the tenant's external id, and which may read, never write, only its own
//! lake's bucket and catalog. The system's principals manage their own account's buckets and
//! nothing of a tenant's, unless the world's [`LakePolicies`] say the tenants' resource
//! policies also trust the system account (the confused deputy of the isolation scenarios).
//!
//! A tenant may revoke the system's access to its lake ([`Iam::revoke`]: the fault
//! `access.revoke`): its role's trust policy no longer admits the system, and the role's
//! permissions and the lake's resource policies no longer let anyone but the tenant's own
//! principals read the lake. Sessions already issued for the role are refused too, as an
//! explicit deny in a bucket policy refuses them on AWS.
//!
//! Policy evaluation follows IAM's rule for cross-account access: a principal may act on a
//! resource of its own account when its identity policy allows it (here: every principal of
//! an account but a lake's read-only role), and on another account's resource only when that
//! resource's policy names it.

use std::collections::{BTreeMap, BTreeSet};
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
/// The longest session a role grants: IAM's default `MaxSessionDuration`, one hour.
pub const MAX_SESSION: Duration = Duration::from_secs(3600);

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
    /// The role's trust policy does not admit the caller, or its condition on the external id
    /// does not hold. STS answers both the same way, so a caller cannot probe which.
    #[error("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}")]
    NotTrusted {
        /// The caller's ARN.
        caller: String,
        /// The role's ARN.
        role: String,
    },
}

/// Why a request's access key is not accepted, after its signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// No one holds that key.
    Unknown,
    /// A temporary key without its session token, with another session's token, or a
    /// long-lived key with a token.
    InvalidToken,
    /// Temporary credentials past their expiry.
    Expired,
}

/// What the tenants' resource policies say beyond their own roles. Default: nothing, as a
/// bucket or catalog is on AWS until its owner writes a policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LakePolicies {
    /// Every lake's bucket policy and catalog policy also grant reads to the system's account:
    /// the system may read a lake with its own credentials, the confused deputy's world.
    pub trust_system: bool,
}

/// What a request does to a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketAccess {
    /// Reads an object or lists keys.
    Read,
    /// Writes, copies into, or deletes.
    Write,
}

#[derive(Debug, Default)]
struct IamState {
    /// Every identity, by access key id.
    identities: BTreeMap<String, Identity>,
    /// Keys issued so far, for deterministic names.
    issued: u64,
    /// Lakes whose tenant revoked the system's access.
    revoked: BTreeSet<u32>,
}

/// The region's identity store, shared by IMDS, STS and the data services.
#[derive(Debug, Clone)]
pub struct Iam {
    seed: u64,
    lakes: LakeDirectory,
    policies: LakePolicies,
    state: Arc<Mutex<IamState>>,
}

impl Iam {
    /// A store knowing the world's lakes and these long-lived identities, with the tenants'
    /// default policies.
    pub fn new(seed: u64, lakes: LakeDirectory, users: Vec<Identity>) -> Self {
        let identities = users
            .into_iter()
            .map(|u| (u.access_key_id.clone(), u))
            .collect();
        Self {
            seed,
            lakes,
            policies: LakePolicies::default(),
            state: Arc::new(Mutex::new(IamState {
                identities,
                issued: 0,
                revoked: BTreeSet::new(),
            })),
        }
    }

    /// The same store with the tenants' resource policies set to `policies`.
    pub fn with_lake_policies(mut self, policies: LakePolicies) -> Self {
        self.policies = policies;
        self
    }

    fn lock(&self) -> MutexGuard<'_, IamState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who holds `access_key_id`, whether or not its keys are still valid: for naming the
    /// caller of a call that is refused.
    pub fn holder(&self, access_key_id: &str) -> Option<Identity> {
        self.lock().identities.get(access_key_id).cloned()
    }

    /// The identity holding `access_key_id`, if the request carried that key's session token
    /// (`token`) and the key is valid at `now`.
    pub fn authenticate(
        &self,
        access_key_id: &str,
        token: Option<&str>,
        now: Duration,
    ) -> Result<Identity, KeyError> {
        let state = self.lock();
        let who = state
            .identities
            .get(access_key_id)
            .ok_or(KeyError::Unknown)?;
        if who.session_token.as_deref() != token {
            return Err(KeyError::InvalidToken);
        }
        if who.expires.is_some_and(|e| now >= e) {
            return Err(KeyError::Expired);
        }
        Ok(who.clone())
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

    /// Checks an AssumeRole of `role_arn` by `caller` against the role's trust policy: it
    /// admits the system's account (its instance role and its users) and no one else, on the
    /// condition `sts:ExternalId` = the tenant's external id.
    pub fn may_assume(
        &self,
        caller: &Identity,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<u32, AssumeError> {
        let lake = self
            .lake_of_role(role_arn)
            .ok_or_else(|| AssumeError::NoSuchRole(role_arn.to_string()))?;
        let trusted = caller.account == SYSTEM_ACCOUNT
            && (caller.role_arn.is_none()
                || caller.role_arn.as_deref() == Some(system_role_arn().as_str()));
        if trusted
            && external_id == Some(self.lakes.external_id(lake).as_str())
            && !self.is_revoked(lake)
        {
            Ok(lake)
        } else {
            Err(AssumeError::NotTrusted {
                caller: caller.arn.clone(),
                role: role_arn.to_string(),
            })
        }
    }

    /// The tenant of lake `lake` revokes the system's access to it (`revoked`), or grants it
    /// again. Whether that changed anything.
    pub fn revoke(&self, lake: u32, revoked: bool) -> bool {
        let mut state = self.lock();
        if revoked {
            state.revoked.insert(lake)
        } else {
            state.revoked.remove(&lake)
        }
    }

    /// Whether the tenant of `lake` revoked the system's access to it.
    pub fn is_revoked(&self, lake: u32) -> bool {
        self.lock().revoked.contains(&lake)
    }

    /// The lake whose role this is.
    pub fn lake_of_role(&self, role_arn: &str) -> Option<u32> {
        let rest = role_arn.strip_prefix("arn:aws:iam::")?;
        let (account, role) = rest.split_once(":role/")?;
        self.lake_of_account(account).filter(|_| role == LAKE_ROLE)
    }

    /// Whether `who` may `access` `bucket`, which `owner` (an account) owns: a lake's role
    /// reads its own lake's bucket and nothing else; any other principal uses its own
    /// account's buckets; the system's account reads a lake's bucket only where the tenants'
    /// policies trust it.
    pub fn may_use_bucket(
        &self,
        who: &Identity,
        bucket: &str,
        owner: &str,
        access: BucketAccess,
    ) -> bool {
        if let Some(lake) = who.role_arn.as_deref().and_then(|r| self.lake_of_role(r)) {
            return access == BucketAccess::Read
                && self.lakes.bucket(lake) == bucket
                && !self.is_revoked(lake);
        }
        if who.account == owner {
            return true;
        }
        access == BucketAccess::Read
            && self.policies.trust_system
            && who.account == SYSTEM_ACCOUNT
            && self
                .lakes
                .lake_of_bucket(bucket)
                .is_some_and(|lake| !self.is_revoked(lake))
    }

    /// Whether `who` may read the catalog of `account`: its own account's, or a lake's where
    /// the tenants' policies trust the system's account.
    pub fn may_read_catalog(&self, who: &Identity, account: &str) -> bool {
        let revoked = self
            .lake_of_account(account)
            .is_some_and(|lake| self.is_revoked(lake));
        let lake_role = who
            .role_arn
            .as_deref()
            .is_some_and(|r| self.lake_of_role(r).is_some());
        (who.account == account && !(lake_role && revoked))
            || (self.policies.trust_system
                && who.account == SYSTEM_ACCOUNT
                && self.lake_of_account(account).is_some()
                && !revoked)
    }

    /// The lake whose account this is.
    pub fn lake_of_account(&self, account: &str) -> Option<u32> {
        let i: u32 = account.strip_prefix('3')?.parse().ok()?;
        (i < self.lakes.count && lake_account(i) == account).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lakes() -> LakeDirectory {
        LakeDirectory {
            seed: 1,
            count: 3,
            tenants: 3,
            regions: vec!["r".into()],
            files_per_lake: 1,
            rows_per_file: 1,
        }
    }

    fn iam() -> Iam {
        Iam::new(1, lakes(), Vec::new())
    }

    fn hour() -> Duration {
        Duration::from_secs(3600)
    }

    #[test]
    fn only_the_system_with_the_tenants_external_id_may_assume_a_lake_role() {
        let iam = iam();
        let system = iam.issue(&system_role_arn(), "i-0", Duration::ZERO, hour());
        let id = lakes().external_id(2);
        assert_eq!(iam.may_assume(&system, &lake_role_arn(2), Some(&id)), Ok(2));
        for wrong in [None, Some("guess"), Some(lakes().external_id(1).as_str())] {
            assert!(matches!(
                iam.may_assume(&system, &lake_role_arn(2), wrong),
                Err(AssumeError::NotTrusted { .. })
            ));
        }
        let lake1 = iam.issue(&lake_role_arn(1), "q", Duration::ZERO, hour());
        assert!(matches!(
            iam.may_assume(&lake1, &lake_role_arn(2), Some(&id)),
            Err(AssumeError::NotTrusted { .. })
        ));
        assert!(matches!(
            iam.may_assume(&system, &lake_role_arn(3), Some(&id)),
            Err(AssumeError::NoSuchRole(_))
        ));
    }

    #[test]
    fn a_lake_role_reads_its_own_lake_and_the_system_only_its_own_buckets() {
        let iam = iam();
        let read = BucketAccess::Read;
        let lake1 = iam.issue(&lake_role_arn(1), "q", Duration::ZERO, hour());
        let owner1 = lake_account(1);
        assert!(iam.may_use_bucket(&lake1, "lake-00001", &owner1, read));
        assert!(!iam.may_use_bucket(&lake1, "lake-00001", &owner1, BucketAccess::Write));
        assert!(!iam.may_use_bucket(&lake1, "lake-00002", &lake_account(2), read));
        let system = iam.issue(&system_role_arn(), "i-0", Duration::ZERO, hour());
        assert!(!iam.may_use_bucket(&system, "lake-00001", &owner1, read));
        assert!(iam.may_use_bucket(&system, "results", SYSTEM_ACCOUNT, BucketAccess::Write));
        assert!(!iam.may_read_catalog(&system, &owner1));
        assert!(iam.may_read_catalog(&lake1, &owner1));
        assert!(!iam.may_read_catalog(&lake1, &lake_account(2)));
        // The confused deputy's world: the tenants' policies trust the system's account.
        let trusting = iam
            .clone()
            .with_lake_policies(LakePolicies { trust_system: true });
        assert!(trusting.may_use_bucket(&system, "lake-00001", &owner1, read));
        assert!(!trusting.may_use_bucket(&system, "lake-00001", &owner1, BucketAccess::Write));
        assert!(trusting.may_read_catalog(&system, &owner1));
    }

    #[test]
    fn a_tenant_that_revokes_access_refuses_new_and_issued_sessions_until_it_grants_again() {
        let iam = iam();
        let read = BucketAccess::Read;
        let system = iam.issue(&system_role_arn(), "i-0", Duration::ZERO, hour());
        let lake1 = iam.issue(&lake_role_arn(1), "q", Duration::ZERO, hour());
        let owner1 = lake_account(1);
        let id = lakes().external_id(1);
        let trusting = iam
            .clone()
            .with_lake_policies(LakePolicies { trust_system: true });
        assert!(iam.revoke(1, true));
        assert!(!iam.revoke(1, true), "already revoked");
        assert!(matches!(
            iam.may_assume(&system, &lake_role_arn(1), Some(&id)),
            Err(AssumeError::NotTrusted { .. })
        ));
        assert!(!iam.may_use_bucket(&lake1, "lake-00001", &owner1, read));
        assert!(!iam.may_read_catalog(&lake1, &owner1));
        assert!(!trusting.may_use_bucket(&system, "lake-00001", &owner1, read));
        assert!(!trusting.may_read_catalog(&system, &owner1));
        // Other lakes are untouched, and the tenant's own account still owns its bucket.
        let id2 = lakes().external_id(2);
        assert_eq!(
            iam.may_assume(&system, &lake_role_arn(2), Some(&id2)),
            Ok(2)
        );
        let tenant = Identity {
            role_arn: None,
            account: owner1.clone(),
            ..system.clone()
        };
        assert!(iam.may_use_bucket(&tenant, "lake-00001", &owner1, read));
        assert!(iam.may_read_catalog(&tenant, &owner1));
        assert!(iam.revoke(1, false));
        assert_eq!(iam.may_assume(&system, &lake_role_arn(1), Some(&id)), Ok(1));
        assert!(iam.may_use_bucket(&lake1, "lake-00001", &owner1, read));
        assert!(iam.may_read_catalog(&lake1, &owner1));
    }

    #[test]
    fn a_session_key_needs_its_own_token_and_expires() {
        let iam = iam();
        let a = iam.issue(
            &system_role_arn(),
            "a",
            Duration::ZERO,
            Duration::from_secs(10),
        );
        let b = iam.issue(
            &system_role_arn(),
            "b",
            Duration::ZERO,
            Duration::from_secs(10),
        );
        let t = Duration::from_secs(9);
        assert!(
            iam.authenticate(&a.access_key_id, a.session_token.as_deref(), t)
                .is_ok()
        );
        assert_eq!(
            iam.authenticate(&a.access_key_id, None, t),
            Err(KeyError::InvalidToken)
        );
        assert_eq!(
            iam.authenticate(&a.access_key_id, b.session_token.as_deref(), t),
            Err(KeyError::InvalidToken)
        );
        assert_eq!(
            iam.authenticate(
                &a.access_key_id,
                a.session_token.as_deref(),
                Duration::from_secs(10)
            ),
            Err(KeyError::Expired)
        );
        assert_eq!(
            iam.authenticate("AKIANOBODY", None, t),
            Err(KeyError::Unknown)
        );
    }

    #[test]
    fn session_keys_are_deterministic() {
        let s = Duration::from_secs(10);
        let a = iam().issue(&system_role_arn(), "s", Duration::ZERO, s);
        let b = iam().issue(&system_role_arn(), "s", Duration::ZERO, s);
        assert_eq!(a, b);
    }
}
