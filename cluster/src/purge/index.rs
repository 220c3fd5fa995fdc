//! The rule index a node consults on every request: is this stored object purged?
//!
//! //= DESIGN.md §4
//! "a cached object is invalid when a matching rule's index is greater than the object's stored
//! index ... Matching is O(1) for url/tag/host/all and O(length) for prefix (a trie): never a
//! scan of the cache on the request path."
//!
//! Per pattern the index keeps only the highest hard and the highest soft index: an older rule
//! on the same pattern can never decide a verdict the newer one does not already decide. So the
//! index grows with the number of distinct patterns, not with the number of purges, and a
//! check is a handful of hash lookups plus one walk of the URL through the prefix tree.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rule::{ObjectRef, PurgeRule, PurgeTarget, PurgeVerdict};
use super::trie::{Marks, PrefixTrie};

/// Every purge rule a node has applied, folded per pattern.
///
/// Serialises to a flat list per kind (the prefix tree is rebuilt on load), which is what the
/// follower persists so a restarted node still knows every purge it applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "IndexSnapshot")]
pub struct PurgeIndex {
    urls: HashMap<String, Marks>,
    tags: HashMap<String, Marks>,
    hosts: HashMap<String, Marks>,
    prefixes: PrefixTrie,
    all: Marks,
    /// `all` purges limited to one service, by service name.
    services: HashMap<String, Marks>,
    /// Whether any rule is limited to a service (patterns `service\u{1}pattern` are then
    /// looked up too).
    scoped: bool,
}

/// Joins a service and a pattern into the key of a rule limited to that service. U+0001 is
/// in no normalised URL or host, no field value (a tag), and no service name.
fn scoped_key(service: &str, pattern: &str) -> String {
    let mut k = String::with_capacity(service.len() + 1 + pattern.len());
    k.push_str(service);
    k.push('\u{1}');
    k.push_str(pattern);
    k
}

impl PurgeIndex {
    /// An empty index: every object is valid.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a rule. Applying the same rule twice, or an older rule after a newer one, changes
    /// nothing.
    pub fn apply(&mut self, rule: &PurgeRule) {
        let marks = Marks::new(rule.soft, rule.index);
        let key = |pattern: &str| match &rule.service {
            Some(s) => scoped_key(s, pattern),
            None => pattern.to_owned(),
        };
        if rule.service.is_some() {
            self.scoped = true;
        }
        let (map, pattern) = match &rule.target {
            PurgeTarget::Url(u) => (&mut self.urls, key(u)),
            PurgeTarget::Tag(t) => (&mut self.tags, key(t)),
            PurgeTarget::Host(h) => (&mut self.hosts, key(h)),
            PurgeTarget::Prefix(p) => return self.prefixes.insert(&key(p), marks),
            PurgeTarget::All => match &rule.service {
                Some(s) => (&mut self.services, s.clone()),
                None => return self.all.merge(marks),
            },
        };
        map.entry(pattern).or_default().merge(marks);
    }

    /// The verdict for a stored object: hard-purged if any matching hard rule is newer than it,
    /// else soft-purged if any matching soft rule is, else valid.
    pub fn check(&self, obj: &ObjectRef<'_>) -> PurgeVerdict {
        let mut m = self.all;
        if let Some(x) = self.urls.get(obj.url) {
            m.merge(*x);
        }
        if !self.hosts.is_empty()
            && let Some(x) = self.hosts.get(obj.host)
        {
            m.merge(*x);
        }
        if !self.tags.is_empty() {
            for t in obj.tags {
                if let Some(x) = self.tags.get(t.as_str()) {
                    m.merge(*x);
                }
            }
        }
        self.prefixes.collect(obj.url, &mut m);
        if self.scoped {
            self.check_scoped(obj, &mut m);
        }
        m.verdict(obj.stored_index)
    }

    /// The rules limited to the object's service.
    fn check_scoped(&self, obj: &ObjectRef<'_>, m: &mut Marks) {
        if let Some(x) = self.services.get(obj.service) {
            m.merge(*x);
        }
        let url = scoped_key(obj.service, obj.url);
        if let Some(x) = self.urls.get(&url) {
            m.merge(*x);
        }
        if let Some(x) = self.hosts.get(&scoped_key(obj.service, obj.host)) {
            m.merge(*x);
        }
        for t in obj.tags {
            if let Some(x) = self.tags.get(&scoped_key(obj.service, t)) {
                m.merge(*x);
            }
        }
        self.prefixes.collect(&url, m);
    }

    /// Snapshot reset: everything stored before `index` is soft-purged.
    ///
    /// Used when the log the node missed was compacted away: the node cannot know which purges
    /// it missed, so every older object must be revalidated before it is served again. Rules
    /// already applied stay, so an object hard-purged before stays hard-purged.
    pub fn reset_soft_all(&mut self, index: u64) {
        self.all.merge(Marks::new(true, index));
    }

    /// Forgets every rule at or below `index`.
    ///
    /// A rule only invalidates objects stored before it, so once the cache holds no object
    /// stored before `index` (the engine knows: it evicts by age, or tracks the oldest stored
    /// index), those rules can never match again. Without pruning the index keeps one entry per
    /// distinct pattern ever purged.
    pub fn prune_below(&mut self, index: u64) {
        self.split_off_below(index);
        self.all = self.all.above(index);
        self.services.retain(|_, m| {
            *m = m.above(index);
            *m != Marks::default()
        });
    }

    /// Keeps the index to at most `keep` patterns (plus `all`) by folding the oldest ones into
    /// the `all` marks; returns the index at or below which rules were folded, or `None` when
    /// nothing had to go.
    ///
    /// Folding over-invalidates, never under-invalidates: every object stored before a folded
    /// hard rule becomes hard-purged (soft likewise), whether or not it matched. That costs
    /// origin fetches for old objects, and only when a node has accumulated more distinct
    /// patterns than it was told to hold; the alternative, an index that grows with every URL
    /// ever purged, costs memory and state-file size forever. (Varnish bans have the same
    /// shape: a ban is dropped once nothing older than it can be in the cache.)
    pub fn fold_oldest(&mut self, keep: usize) -> Option<u64> {
        // A service's `all` is one entry per service: never folded.
        let mut newest: Vec<u64> = [&self.urls, &self.tags, &self.hosts]
            .into_iter()
            .flat_map(|m| m.values().map(|x| x.newest()))
            .chain(self.prefixes.newest_marks())
            .collect();
        if newest.len() <= keep {
            return None;
        }
        // Fold every pattern whose newest mark is at or below the (n - keep)-th oldest; ties
        // go too, so the index may end up a little below `keep`.
        let cut = newest.len() - keep - 1;
        let (_, &mut below, _) = newest.select_nth_unstable(cut);
        let (dropped, scoped) = self.split_off_below(below);
        self.all.merge(dropped);
        // A tenant's folded rules stay the tenant's: they over-invalidate its own objects,
        // never another service's.
        for (service, marks) in scoped {
            self.services.entry(service).or_default().merge(marks);
        }
        Some(below)
    }

    /// Removes every mark at or below `index` from the patterns (not from `all` nor from the
    /// services' `all`) and returns the newest removed marks: of unscoped rules, and of the
    /// rules of each service.
    fn split_off_below(&mut self, index: u64) -> (Marks, HashMap<String, Marks>) {
        let mut dropped = Marks::default();
        let mut scoped: HashMap<String, Marks> = HashMap::new();
        let mut note = |key: &str, m: Marks| {
            if m == Marks::default() {
                return;
            }
            match key.split_once('\u{1}') {
                Some((service, _)) => scoped.entry(service.to_owned()).or_default().merge(m),
                None => dropped.merge(m),
            }
        };
        for map in [&mut self.urls, &mut self.tags, &mut self.hosts] {
            map.retain(|k, m| {
                note(k, m.at_or_below(index));
                *m = m.above(index);
                *m != Marks::default()
            });
        }
        if self.scoped {
            // Rebuilt so each dropped prefix is charged to its own service (rare: only when
            // the index is over its size or pruned).
            let mut kept = PrefixTrie::default();
            for (p, m) in self.prefixes.entries() {
                note(&p, m.at_or_below(index));
                let above = m.above(index);
                if above != Marks::default() {
                    kept.insert(&p, above);
                }
            }
            self.prefixes = kept;
        } else {
            dropped.merge(self.prefixes.retain_above(index));
        }
        (dropped, scoped)
    }

    /// Number of distinct patterns recorded (each kind counts separately; `all` counts once
    /// when set).
    pub fn len(&self) -> usize {
        let all = usize::from(self.all != Marks::default());
        self.urls.len()
            + self.tags.len()
            + self.hosts.len()
            + self.services.len()
            + self.prefixes.len()
            + all
    }

    /// Whether no rule was ever applied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The persisted shape of a [`PurgeIndex`]: sorted lists, so the same index always serialises
/// to the same bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct IndexSnapshot {
    urls: Vec<(String, Marks)>,
    prefixes: Vec<(String, Marks)>,
    tags: Vec<(String, Marks)>,
    hosts: Vec<(String, Marks)>,
    all: Marks,
    services: Vec<(String, Marks)>,
}

/// The same shape, borrowed, so persisting a large index does not clone it first.
#[derive(Serialize)]
struct IndexSnapshotRef<'a> {
    urls: Vec<(&'a str, Marks)>,
    prefixes: Vec<(String, Marks)>,
    tags: Vec<(&'a str, Marks)>,
    hosts: Vec<(&'a str, Marks)>,
    all: Marks,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<(&'a str, Marks)>,
}

fn sorted(map: &HashMap<String, Marks>) -> Vec<(&str, Marks)> {
    let mut v: Vec<_> = map.iter().map(|(k, m)| (k.as_str(), *m)).collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

impl Serialize for PurgeIndex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        IndexSnapshotRef {
            urls: sorted(&self.urls),
            prefixes: self.prefixes.entries(),
            tags: sorted(&self.tags),
            hosts: sorted(&self.hosts),
            all: self.all,
            services: sorted(&self.services),
        }
        .serialize(serializer)
    }
}

impl From<IndexSnapshot> for PurgeIndex {
    fn from(s: IndexSnapshot) -> Self {
        fn fold(v: Vec<(String, Marks)>) -> HashMap<String, Marks> {
            let mut map = HashMap::with_capacity(v.len());
            for (k, m) in v {
                map.entry(k).or_insert_with(Marks::default).merge(m);
            }
            map
        }
        let mut prefixes = PrefixTrie::default();
        let mut scoped = !s.services.is_empty();
        for (p, m) in &s.prefixes {
            scoped |= p.contains('\u{1}');
            prefixes.insert(p, *m);
        }
        scoped |= [&s.urls, &s.tags, &s.hosts]
            .iter()
            .any(|v| v.iter().any(|(k, _)| k.contains('\u{1}')));
        PurgeIndex {
            urls: fold(s.urls),
            tags: fold(s.tags),
            hosts: fold(s.hosts),
            prefixes,
            all: s.all,
            services: fold(s.services),
            scoped,
        }
    }
}

#[cfg(test)]
mod tests;
