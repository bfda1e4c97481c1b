//! A bounded, in-memory cache of conditional reads: for each URL (query included), the ETag
//! GitHub sent with its last 200 and what that answer said, parsed, so a `304 Not Modified`
//! (free against the primary rate limit) reuses it. It lives as long as the [`GitHubSource`]
//! that owns it, so a long-lived process pays nothing for what did not change, and a one-shot
//! run starts empty.
//!
//! [`GitHubSource`]: crate::GitHubSource

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use preview_core::PullRequest;

/// At most `capacity` entries; inserting into a full cache drops the least recently used one.
#[derive(Debug)]
pub(crate) struct EtagCache<V> {
    capacity: usize,
    /// Bumped on every use, so the smallest stamp is the least recently used.
    clock: u64,
    entries: HashMap<String, Entry<V>>,
}

#[derive(Debug)]
struct Entry<V> {
    used: u64,
    etag: String,
    value: Arc<V>,
}

impl<V> EtagCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: 0,
            entries: HashMap::new(),
        }
    }

    /// The ETag and value cached for `url`, marked as just used.
    pub(crate) fn get(&mut self, url: &str) -> Option<(String, Arc<V>)> {
        self.clock += 1;
        let now = self.clock;
        self.entries.get_mut(url).map(|e| {
            e.used = now;
            (e.etag.clone(), e.value.clone())
        })
    }

    /// Caches `value` under `url` with `etag`, replacing what was there.
    pub(crate) fn insert(&mut self, url: String, etag: String, value: Arc<V>) {
        self.clock += 1;
        if !self.entries.contains_key(&url) && self.entries.len() >= self.capacity {
            // Linear, but the cache is small and a miss already cost a round trip.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let used = self.clock;
        self.entries.insert(url, Entry { used, etag, value });
    }

    /// Forgets `url` (its answer came without an ETag: nothing to validate against).
    pub(crate) fn remove(&mut self, url: &str) {
        self.entries.remove(url);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Pull requests read one by one whose answers are kept (each a few hundred bytes, parsed).
const CACHED_PULL_REQUESTS: usize = 4096;
/// Pages of the open pull requests kept: 25,600 PRs at 100 a page.
const CACHED_PAGES: usize = 256;

/// The caches of one [`GitHubSource`], in memory and bounded.
#[derive(Debug)]
pub(crate) struct Caches {
    pub(crate) pulls: Mutex<EtagCache<PullRequest>>,
    pub(crate) pages: Mutex<EtagCache<OpenPage>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            pulls: Mutex::new(EtagCache::new(CACHED_PULL_REQUESTS)),
            pages: Mutex::new(EtagCache::new(CACHED_PAGES)),
        }
    }
}

/// A page of open pull requests as GitHub last sent it.
#[derive(Debug)]
pub(crate) struct OpenPage {
    pub(crate) items: Vec<PullRequest>,
    pub(crate) next: Option<url::Url>,
    /// It held as many PRs as a page can.
    pub(crate) full: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_drops_the_least_recently_used() {
        let mut c = EtagCache::new(2);
        c.insert("a".into(), "W/\"1\"".into(), Arc::new(1));
        c.insert("b".into(), "W/\"2\"".into(), Arc::new(2));
        // `a` is used again, so `b` is the least recently used when `c` comes.
        assert_eq!(
            c.get("a").map(|(e, v)| (e, *v)),
            Some(("W/\"1\"".into(), 1))
        );
        c.insert("c".into(), "W/\"3\"".into(), Arc::new(3));
        assert_eq!(c.len(), 2);
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        // Replacing an entry never evicts another.
        c.insert("c".into(), "W/\"4\"".into(), Arc::new(4));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("c").map(|(e, _)| e), Some("W/\"4\"".into()));
        c.remove("c");
        assert!(c.get("c").is_none());
    }
}
