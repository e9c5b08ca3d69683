//! A cache with request coalescing: concurrent lookups of one missing key share one fetch, and
//! a fetched value lives until its expiry. Written here rather than taken from moka because
//! moka reads the wall clock for expiry; this one takes time as an argument.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// From the cache.
    Hit,
    /// Fetched by this caller.
    Miss,
    /// Shared another caller's fetch in flight.
    Coalesced,
}

impl Lookup {
    /// The event name of the lookup.
    pub fn event(self) -> &'static str {
        match self {
            Lookup::Hit => "cache_hit",
            Lookup::Miss => "cache_miss",
            Lookup::Coalesced => "cache_coalesced",
        }
    }
}

type Fetch<V, E> = Shared<BoxFuture<'static, Result<(V, Duration), E>>>;

enum Slot<V: Clone, E: Clone> {
    Ready { value: V, expires: Duration },
    Loading(Fetch<V, E>),
}

/// The cache. `V` and `E` are cloned to every caller of a shared fetch.
pub struct CoalescingCache<V: Clone, E: Clone> {
    slots: Mutex<BTreeMap<String, Slot<V, E>>>,
}

impl<V: Clone, E: Clone> Default for CoalescingCache<V, E> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<V: Clone, E: Clone> std::fmt::Debug for CoalescingCache<V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoalescingCache")
    }
}

impl<V, E> CoalescingCache<V, E>
where
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Forgets everything (an operator's cache flush, or a restart).
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The value of `key` at `now`, fetched by `fetch` (which answers the value and when it
    /// expires) unless cached or already being fetched.
    pub async fn get<F, Fut>(&self, key: &str, now: Duration, fetch: F) -> (Result<V, E>, Lookup)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>> + Send + 'static,
    {
        let (shared, lookup) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(key) {
                Some(Slot::Ready { value, expires }) if *expires > now => {
                    return (Ok(value.clone()), Lookup::Hit);
                }
                Some(Slot::Loading(f)) => match f.peek() {
                    None => (f.clone(), Lookup::Coalesced),
                    Some(Ok((value, expires))) if *expires > now => {
                        return (Ok(value.clone()), Lookup::Hit);
                    }
                    Some(_) => {
                        let f = fetch().boxed().shared();
                        slots.insert(key.to_string(), Slot::Loading(f.clone()));
                        (f, Lookup::Miss)
                    }
                },
                _ => {
                    let f = fetch().boxed().shared();
                    slots.insert(key.to_string(), Slot::Loading(f.clone()));
                    (f, Lookup::Miss)
                }
            }
        };
        let result = shared.await;
        if lookup == Lookup::Miss {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Ok((value, expires)) => {
                    slots.insert(
                        key.to_string(),
                        Slot::Ready {
                            value: value.clone(),
                            expires: *expires,
                        },
                    );
                }
                Err(_) => {
                    slots.remove(key);
                }
            }
        }
        (result.map(|(v, _)| v), lookup)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn concurrent_misses_share_one_fetch_and_hits_until_expiry() {
        let cache: Arc<CoalescingCache<u32, String>> = Arc::default();
        let fetches = Arc::new(AtomicU32::new(0));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let lookups = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..5 {
                let cache = cache.clone();
                let fetches = fetches.clone();
                set.spawn(async move {
                    let (v, how) = cache
                        .get("k", Duration::ZERO, || async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            Ok((7, Duration::from_secs(10)))
                        })
                        .await;
                    assert_eq!(v, Ok(7));
                    how
                });
            }
            let mut all = Vec::new();
            while let Some(h) = set.join_next().await {
                all.push(h.unwrap());
            }
            all
        });
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(lookups.iter().filter(|l| **l == Lookup::Miss).count(), 1);
        assert_eq!(
            lookups.iter().filter(|l| **l == Lookup::Coalesced).count(),
            4
        );
        let again = rt.block_on(cache.get("k", Duration::from_secs(9), || async {
            Ok((8, Duration::MAX))
        }));
        assert_eq!(again, (Ok(7), Lookup::Hit));
        let expired = rt.block_on(cache.get("k", Duration::from_secs(10), || async {
            Ok((8, Duration::MAX))
        }));
        assert_eq!(expired, (Ok(8), Lookup::Miss));
        let failed = rt.block_on(cache.get("e", Duration::ZERO, || async {
            Err::<(u32, Duration), _>("no".to_string())
        }));
        assert_eq!(failed, (Err("no".into()), Lookup::Miss));
        let retried =
            rt.block_on(cache.get("e", Duration::ZERO, || async { Ok((1, Duration::MAX)) }));
        assert_eq!(retried, (Ok(1), Lookup::Miss), "errors are not cached");
    }
}
