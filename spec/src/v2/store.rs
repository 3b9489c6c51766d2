//! The v2 tree store itself (etcd 3.4 `v2store/store.go`, `node.go`).

use std::collections::{BTreeMap, BTreeSet};

use super::error::{V2Error, V2ErrorCode};
use super::event::{Action, Event, NodeView, ttl_seconds};
use super::history::{EventHistory, WatchStart, Watcher};
use super::path;

/// The cluster namespace etcd keeps in the store (`StoreClusterPrefix`): members and the
/// cluster version live under it.
pub const CLUSTER_PREFIX: &str = "/0";
/// The keys namespace (`StoreKeysPrefix`): `/v2/keys/foo` is store path `/1/foo`.
pub const KEYS_PREFIX: &str = "/1";
/// Expiration times before 2000-01-01T00:00:00Z mean "no TTL" when creating a node
/// (etcd's `minExpireTime`), in ms since the Unix epoch.
pub const MIN_EXPIRE_MS: u64 = 946_684_800_000;

/// The store path for a v2 keys API path: `path.Join("/1", p)`.
pub fn keys_path(user_path: &str) -> String {
    path::clean(&format!("{KEYS_PREFIX}/{user_path}"))
}

/// TTL options of a write (`TTLOptionSet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TtlOptions {
    /// Absolute expiration in ms since the Unix epoch (the server computes
    /// `now + ttl` when it receives the request, as etcd's HTTP handler does); `None`
    /// makes the node permanent. etcd's handler maps `ttl=` (empty) to `None` (this is
    /// how an update removes a TTL) and `ttl=0` to "expires now" (removed by the next
    /// SYNC).
    pub expire_at_ms: Option<u64>,
    /// A TTL refresh: keep the current value, set the new expiration, and do not notify
    /// watchers (the event still takes an index and a history slot).
    pub refresh: bool,
}

impl TtlOptions {
    /// No TTL, no refresh.
    pub const PERMANENT: TtlOptions = TtlOptions {
        expire_at_ms: None,
        refresh: false,
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum NodeKind {
    File(String),
    Dir(BTreeMap<String, Node>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    created_index: u64,
    modified_index: u64,
    expire_ms: Option<u64>,
    kind: NodeKind,
}

impl Node {
    fn new_dir(index: u64, expire_ms: Option<u64>) -> Self {
        Self {
            created_index: index,
            modified_index: index,
            expire_ms,
            kind: NodeKind::Dir(BTreeMap::new()),
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_))
    }

    fn value(&self) -> &str {
        match &self.kind {
            NodeKind::File(v) => v,
            NodeKind::Dir(_) => "",
        }
    }

    fn children(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.kind {
            NodeKind::Dir(c) => Some(c),
            NodeKind::File(_) => None,
        }
    }

    fn children_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.kind {
            NodeKind::Dir(c) => Some(c),
            NodeKind::File(_) => None,
        }
    }

    /// `expirationAndTTL`.
    fn expiration_and_ttl(&self, now_ms: u64) -> (Option<u64>, i64) {
        match self.expire_ms {
            Some(e) => (Some(e), ttl_seconds(e, now_ms)),
            None => (None, 0),
        }
    }

    /// `node.Repr`: the node, and (when `recursive`) its visible descendants. Children are
    /// always in name order (etcd's unsorted order is Go map order, i.e. random; sorted
    /// order is one of the orders etcd may give).
    fn repr(&self, key: &str, recursive: bool, now_ms: u64) -> NodeView {
        let (expiration_ms, ttl_s) = self.expiration_and_ttl(now_ms);
        let mut view = NodeView {
            key: key.to_string(),
            expiration_ms,
            ttl_s,
            modified_index: self.modified_index,
            created_index: self.created_index,
            ..NodeView::default()
        };
        match &self.kind {
            NodeKind::File(v) => view.value = Some(v.clone()),
            NodeKind::Dir(children) => {
                view.dir = true;
                if recursive {
                    view.nodes = Some(visible_children(key, children, true, now_ms));
                }
            }
        }
        view
    }

    /// `NodeExtern.loadInternalNode`: like `repr`, but a directory always lists its
    /// visible children (recursively only when asked).
    fn load(&self, key: &str, recursive: bool, now_ms: u64) -> NodeView {
        let mut view = self.repr(key, false, now_ms);
        if let Some(children) = self.children() {
            view.nodes = Some(visible_children(key, children, recursive, now_ms));
        }
        view
    }

    /// Paths of this node and all descendants, children before parents.
    fn subtree_paths(&self, key: &str, out: &mut Vec<String>) {
        if let Some(children) = self.children() {
            for (name, child) in children {
                child.subtree_paths(&path::join(key, name), out);
            }
        }
        out.push(key.to_string());
    }

    fn subtree_ttls(&self, key: &str, out: &mut Vec<(u64, String)>) {
        if let Some(e) = self.expire_ms {
            out.push((e, key.to_string()));
        }
        if let Some(children) = self.children() {
            for (name, child) in children {
                child.subtree_ttls(&path::join(key, name), out);
            }
        }
    }
}

fn visible_children(
    key: &str,
    children: &BTreeMap<String, Node>,
    recursive: bool,
    now_ms: u64,
) -> Vec<NodeView> {
    children
        .iter()
        .filter(|(name, _)| !path::is_hidden_name(name))
        .map(|(name, child)| child.repr(&path::join(key, name), recursive, now_ms))
        .collect()
}

/// `node.Compare` + `getCompareFailCause`: `None` when the test passes, else the cause.
fn compare_fail_cause(node: &Node, prev_value: &str, prev_index: u64) -> Option<String> {
    let index_match = prev_index == 0 || node.modified_index == prev_index;
    let value_match = prev_value.is_empty() || node.value() == prev_value;
    match (value_match, index_match) {
        (true, true) => None,
        (true, false) => Some(format!("[{} != {}]", prev_index, node.modified_index)),
        (false, true) => Some(format!("[{} != {}]", prev_value, node.value())),
        (false, false) => Some(format!(
            "[{} != {}] [{} != {}]",
            prev_value,
            node.value(),
            prev_index,
            node.modified_index
        )),
    }
}

/// The v2 store: the tree, the store index, the TTL index and the event history.
///
/// All paths are store paths (the keys API lives under [`KEYS_PREFIX`]); every method
/// cleans its path argument as etcd does (`path.Clean(path.Join("/", p))`). Errors carry
/// store paths in their cause; the keys API trims the prefix
/// ([`V2Error::trim_cause_prefix`], [`Event::trim_prefix`]).
///
/// Invariants (see [`Store::check_invariants`]): every node's indexes are at most
/// `index`; `ttl_index` holds exactly the `(expiration, path)` of every node with a TTL;
/// the history's events are contiguous and end at or before `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    root: Node,
    index: u64,
    ttl_index: BTreeSet<(u64, String)>,
    read_only: BTreeSet<String>,
    history: EventHistory,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// The store an etcd 3.4 server starts with: index 0 and the read-only namespaces
    /// `/0` and `/1` as empty directories (created and modified index 0).
    pub fn new() -> Self {
        Self::with_namespaces(&[CLUSTER_PREFIX, KEYS_PREFIX])
    }

    /// A store with the given read-only namespace directories (etcd's `v2store.New`).
    pub fn with_namespaces(namespaces: &[&str]) -> Self {
        let mut root = Node::new_dir(0, None);
        let mut read_only = BTreeSet::from(["/".to_string()]);
        for ns in namespaces {
            let ns = path::clean(ns);
            if let (Some(children), Some(name)) =
                (root.children_mut(), path::components(&ns).first())
            {
                children.insert((*name).to_string(), Node::new_dir(0, None));
            }
            read_only.insert(ns);
        }
        Self {
            root,
            index: 0,
            ttl_index: BTreeSet::new(),
            read_only,
            history: EventHistory::default(),
        }
    }

    /// The store index (`CurrentIndex`): advanced by one per successful modification.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The event history.
    pub fn history(&self) -> &EventHistory {
        &self.history
    }

    /// The earliest expiration among nodes with a TTL, if any: when the leader's next
    /// SYNC has work to do.
    pub fn next_expiration_ms(&self) -> Option<u64> {
        self.ttl_index.first().map(|(e, _)| *e)
    }

    fn err(&self, code: V2ErrorCode, cause: impl Into<String>) -> V2Error {
        V2Error::new(code, cause, self.index)
    }

    /// `internalGet`: walks `clean_path`, failing with 104 at a file in the way or 100
    /// at the first missing element.
    fn lookup(&self, clean_path: &str) -> Result<&Node, V2Error> {
        let mut node = &self.root;
        let mut current = "/".to_string();
        for name in path::components(clean_path) {
            let Some(children) = node.children() else {
                return Err(self.err(V2ErrorCode::NotDir, current));
            };
            let child_path = path::join(&current, name);
            match children.get(name) {
                Some(child) => node = child,
                None => return Err(self.err(V2ErrorCode::KeyNotFound, child_path)),
            }
            current = child_path;
        }
        Ok(node)
    }

    fn lookup_mut(&mut self, clean_path: &str) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for name in path::components(clean_path) {
            node = node.children_mut()?.get_mut(name)?;
        }
        Some(node)
    }

    /// Removes the node at `clean_path` with its subtree (the caller has checked that it
    /// exists and may be removed); returns the removed paths, children first.
    fn remove_subtree(&mut self, clean_path: &str) -> Vec<String> {
        let comps = path::components(clean_path);
        let Some((last, parent_comps)) = comps.split_last() else {
            return Vec::new();
        };
        let parent_path = format!("/{}", parent_comps.join("/"));
        let removed = self
            .lookup_mut(&parent_path)
            .and_then(Node::children_mut)
            .and_then(|c| c.remove(*last));
        let Some(removed) = removed else {
            return Vec::new();
        };
        let mut ttls = Vec::new();
        removed.subtree_ttls(clean_path, &mut ttls);
        for entry in ttls {
            self.ttl_index.remove(&entry);
        }
        let mut paths = Vec::new();
        removed.subtree_paths(clean_path, &mut paths);
        paths
    }

    fn set_ttl(&mut self, clean_path: &str, expire_ms: Option<u64>) {
        let Some(node) = self.lookup_mut(clean_path) else {
            return;
        };
        let old = std::mem::replace(&mut node.expire_ms, expire_ms);
        if let Some(old) = old {
            self.ttl_index.remove(&(old, clean_path.to_string()));
        }
        if let Some(new) = expire_ms {
            self.ttl_index.insert((new, clean_path.to_string()));
        }
    }

    /// Removes the node at `clean_path` with its subtree as one write: the index advances
    /// by one and one event with `action` is recorded. Delete, compare-and-delete and
    /// TTL expiry differ only in their checks and their action.
    fn remove_recorded(
        &mut self,
        clean_path: &str,
        action: Action,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let node = self.lookup(clean_path)?;
        let next = self.index + 1;
        let prev = node.repr(clean_path, false, now_ms);
        let view = NodeView {
            key: clean_path.to_owned(),
            dir: node.is_dir(),
            modified_index: next,
            created_index: node.created_index,
            ..NodeView::default()
        };
        let deleted_paths = self.remove_subtree(clean_path);
        self.index = next;
        let event = Event {
            action,
            node: view,
            prev_node: Some(prev),
            etcd_index: next,
            refresh: false,
            deleted_paths,
        };
        self.record(&event);
        Ok(event)
    }

    fn record(&mut self, event: &Event) {
        self.history.add(event.clone());
    }

    /// `Get`: the node at `path` (a directory lists its visible children, recursively
    /// when asked). Does not change the store.
    ///
    /// # Errors
    /// 100 Key not found, 104 Not a directory.
    pub fn get(&self, path: &str, recursive: bool, now_ms: u64) -> Result<Event, V2Error> {
        let p = path::clean(path);
        let node = self.lookup(&p)?;
        Ok(Event {
            action: Action::Get,
            node: node.load(&p, recursive, now_ms),
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
            deleted_paths: Vec::new(),
        })
    }

    /// `internalCreate`: creates a file or directory at `path` (or, when `unique`, at
    /// `path/<next index as 20 digits>`), creating missing parent directories with the
    /// new index. With `replace`, an existing file is replaced (its view becomes
    /// `prev_node`).
    #[expect(clippy::too_many_arguments, reason = "mirrors etcd's internalCreate")]
    fn internal_create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        replace: bool,
        expire_ms: Option<u64>,
        action: Action,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let next = self.index + 1;
        let raw = if unique {
            format!("{path}/{next:020}")
        } else {
            path.to_string()
        };
        let p = path::clean(&raw);
        if self.read_only.contains(&p) {
            return Err(self.err(V2ErrorCode::RootReadOnly, "/"));
        }
        let expire_ms = expire_ms.filter(|e| *e >= MIN_EXPIRE_MS);
        let comps = path::components(&p);
        let Some((name, parent_comps)) = comps.split_last() else {
            return Err(self.err(V2ErrorCode::RootReadOnly, "/"));
        };
        // Check the walk first (etcd's checkDir fails only at an existing file, and
        // then has created nothing, since created directories are empty).
        {
            let mut node = &self.root;
            let mut current = "/".to_string();
            for comp in parent_comps {
                current = path::join(&current, comp);
                match node.children().and_then(|c| c.get(*comp)) {
                    Some(child) if child.is_dir() => node = child,
                    Some(_) => return Err(self.err(V2ErrorCode::NotDir, current)),
                    None => break,
                }
            }
        }
        let mut prev_node = None;
        if let Ok(existing) = self.lookup(&p) {
            if !replace {
                return Err(self.err(V2ErrorCode::NodeExist, p));
            }
            if existing.is_dir() {
                return Err(self.err(V2ErrorCode::NotFile, p));
            }
            prev_node = Some(existing.repr(&p, false, now_ms));
            self.remove_subtree(&p);
        }
        let mut parent = &mut self.root;
        for comp in parent_comps {
            let children = parent
                .children_mut()
                .expect("the walk above checked every parent is a directory");
            parent = children
                .entry((*comp).to_string())
                .or_insert_with(|| Node::new_dir(next, None));
        }
        let node = Node {
            created_index: next,
            modified_index: next,
            expire_ms,
            kind: if dir {
                NodeKind::Dir(BTreeMap::new())
            } else {
                NodeKind::File(value.to_string())
            },
        };
        let view = node.repr(&p, false, now_ms);
        parent
            .children_mut()
            .expect("the walk above checked every parent is a directory")
            .insert((*name).to_string(), node);
        if let Some(e) = expire_ms {
            self.ttl_index.insert((e, p.clone()));
        }
        self.index = next;
        Ok(Event {
            action,
            node: view,
            prev_node,
            etcd_index: next,
            refresh: false,
            deleted_paths: Vec::new(),
        })
    }

    /// `Set` (PUT without preconditions): creates or replaces the file (or creates the
    /// directory) at `path`. With `refresh`, the current value is kept and only the TTL
    /// changes (and the key must exist). `prev_node` is the replaced node.
    ///
    /// # Errors
    /// 102 Not a file (a directory is there), 104 Not a directory, 107 Root is read only,
    /// 100 Key not found (refresh of a missing key).
    pub fn set(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        ttl: TtlOptions,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let p = path::clean(path);
        let (prev, current_value) = match self.lookup(&p) {
            Ok(n) => (Some(n.load(&p, false, now_ms)), Ok(n.value().to_string())),
            Err(e) if e.code == V2ErrorCode::KeyNotFound => (None, Err(e)),
            Err(e) => return Err(e),
        };
        let value = if ttl.refresh {
            current_value?
        } else {
            value.to_string()
        };
        let mut event = self.internal_create(
            &p,
            dir,
            &value,
            false,
            true,
            ttl.expire_at_ms,
            Action::Set,
            now_ms,
        )?;
        event.prev_node = prev;
        event.refresh = ttl.refresh;
        self.record(&event);
        Ok(event)
    }

    /// `Create` (PUT with `prevExist=false`, or POST with `unique`): fails if the node
    /// exists. POST creates `path/<index as 20 zero-padded digits>`.
    ///
    /// # Errors
    /// 105 Key already exists, 104 Not a directory, 107 Root is read only.
    pub fn create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        ttl: TtlOptions,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let event = self.internal_create(
            path,
            dir,
            value,
            unique,
            false,
            ttl.expire_at_ms,
            Action::Create,
            now_ms,
        )?;
        self.record(&event);
        Ok(event)
    }

    /// `Update` (PUT with `prevExist=true`): changes the value and TTL of an existing
    /// node. A directory accepts only an empty value; its own `modifiedIndex` is NOT
    /// changed although the event reports the new index (etcd 3.4 behaviour: the write
    /// fails silently on directories). Without `expire_at_ms` the node becomes permanent.
    ///
    /// # Errors
    /// 100 Key not found, 102 Not a file (non-empty value on a directory), 104, 107.
    pub fn update(
        &mut self,
        path: &str,
        value: &str,
        ttl: TtlOptions,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let p = path::clean(path);
        if self.read_only.contains(&p) {
            return Err(self.err(V2ErrorCode::RootReadOnly, "/"));
        }
        let node = self.lookup(&p)?;
        let is_dir = node.is_dir();
        if is_dir && !value.is_empty() {
            return Err(self.err(V2ErrorCode::NotFile, p));
        }
        let value = if ttl.refresh {
            node.value().to_string()
        } else {
            value.to_string()
        };
        let next = self.index + 1;
        let prev = node.repr(&p, false, now_ms);
        let created_index = node.created_index;
        if let Some(node) = self.lookup_mut(&p)
            && let NodeKind::File(v) = &mut node.kind
        {
            *v = value.clone();
            node.modified_index = next;
        }
        self.set_ttl(&p, ttl.expire_at_ms);
        let (expiration_ms, ttl_s) = match ttl.expire_at_ms {
            Some(e) => (Some(e), ttl_seconds(e, now_ms)),
            None => (None, 0),
        };
        let event = Event {
            action: Action::Update,
            node: NodeView {
                key: p,
                value: (!is_dir).then_some(value),
                dir: is_dir,
                nodes: None,
                expiration_ms,
                ttl_s,
                modified_index: next,
                created_index,
            },
            prev_node: Some(prev),
            etcd_index: next,
            refresh: ttl.refresh,
            deleted_paths: Vec::new(),
        };
        self.index = next;
        self.record(&event);
        Ok(event)
    }

    /// `CompareAndSwap` (PUT with prevValue and/or prevIndex): writes only if every given
    /// test passes (an empty `prev_value` / zero `prev_index` is not tested).
    ///
    /// # Errors
    /// 101 Compare failed with cause `[prevValue != value]`, `[prevIndex != index]` or
    /// both; 100, 102 (directories cannot be swapped), 104, 107.
    pub fn compare_and_swap(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        ttl: TtlOptions,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let p = path::clean(path);
        if self.read_only.contains(&p) {
            return Err(self.err(V2ErrorCode::RootReadOnly, "/"));
        }
        let node = self.lookup(&p)?;
        if node.is_dir() {
            return Err(self.err(V2ErrorCode::NotFile, p));
        }
        if let Some(cause) = compare_fail_cause(node, prev_value, prev_index) {
            return Err(self.err(V2ErrorCode::TestFailed, cause));
        }
        let value = if ttl.refresh {
            node.value().to_string()
        } else {
            value.to_string()
        };
        let prev = node.repr(&p, false, now_ms);
        let created_index = node.created_index;
        let next = self.index + 1;
        if let Some(node) = self.lookup_mut(&p) {
            node.kind = NodeKind::File(value.clone());
            node.modified_index = next;
        }
        self.set_ttl(&p, ttl.expire_at_ms);
        let (expiration_ms, ttl_s) = match ttl.expire_at_ms {
            Some(e) => (Some(e), ttl_seconds(e, now_ms)),
            None => (None, 0),
        };
        self.index = next;
        let event = Event {
            action: Action::CompareAndSwap,
            node: NodeView {
                key: p,
                value: Some(value),
                expiration_ms,
                ttl_s,
                modified_index: next,
                created_index,
                ..NodeView::default()
            },
            prev_node: Some(prev),
            etcd_index: next,
            refresh: ttl.refresh,
            deleted_paths: Vec::new(),
        };
        self.record(&event);
        Ok(event)
    }

    /// `Delete`: removes a file, or a directory when `dir` (empty) or `recursive` (with
    /// everything under it; `recursive` implies `dir`). A file is deleted even with `dir`.
    ///
    /// # Errors
    /// 100, 102 Not a file (directory without dir/recursive), 104, 107 Root is read only
    /// (cause "/"), 108 Directory not empty.
    pub fn delete(
        &mut self,
        path: &str,
        dir: bool,
        recursive: bool,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let p = path::clean(path);
        if self.read_only.contains(&p) {
            return Err(self.err(V2ErrorCode::RootReadOnly, "/"));
        }
        let dir = dir || recursive;
        let node = self.lookup(&p)?;
        if let Some(children) = node.children() {
            if !dir {
                return Err(self.err(V2ErrorCode::NotFile, p));
            }
            if !children.is_empty() && !recursive {
                return Err(self.err(V2ErrorCode::DirNotEmpty, p));
            }
        }
        self.remove_recorded(&p, Action::Delete, now_ms)
    }

    /// `CompareAndDelete` (DELETE with prevValue and/or prevIndex): files only. Unlike
    /// the other writes it has no read-only check: the root fails as "Not a file".
    ///
    /// # Errors
    /// 100, 101 Compare failed, 102 Not a file, 104.
    pub fn compare_and_delete(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        now_ms: u64,
    ) -> Result<Event, V2Error> {
        let p = path::clean(path);
        let node = self.lookup(&p)?;
        if node.is_dir() {
            return Err(self.err(V2ErrorCode::NotFile, p));
        }
        if let Some(cause) = compare_fail_cause(node, prev_value, prev_index) {
            return Err(self.err(V2ErrorCode::TestFailed, cause));
        }
        self.remove_recorded(&p, Action::CompareAndDelete, now_ms)
    }

    /// `DeleteExpiredKeys`, applied through the log as the leader's SYNC request: removes
    /// every node whose expiration is at or before `now_ms`, earliest first (ties in path
    /// order; etcd's heap leaves ties unspecified), one "expire" event and one index
    /// each. A directory's expiry removes its subtree. TTLs in `prev_node` are computed
    /// at `now_ms`.
    pub fn delete_expired_keys(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some((expire_ms, p)) = self.ttl_index.first().cloned() {
            if expire_ms > now_ms {
                break;
            }
            match self.remove_recorded(&p, Action::Expire, now_ms) {
                Ok(event) => events.push(event),
                Err(_) => {
                    self.ttl_index.remove(&(expire_ms, p));
                }
            }
        }
        events
    }

    /// `Watch`: starts a watch on `key` from `since_index` (0 means "from the next
    /// index"). Answers from the history when a matching event is kept there.
    ///
    /// # Errors
    /// 401 The event in requested index is outdated and cleared, with cause
    /// `the requested history has been cleared [start/since]` and the store index.
    pub fn watch(
        &self,
        key: &str,
        recursive: bool,
        stream: bool,
        since_index: u64,
    ) -> Result<WatchStart, V2Error> {
        let key = path::clean(key);
        let since_index = if since_index == 0 {
            self.index + 1
        } else {
            since_index
        };
        match self.history.scan(&key, recursive, since_index) {
            Err(mut e) => {
                e.index = self.index;
                Err(e)
            }
            Ok(Some(event)) => {
                let mut event = event.clone();
                event.etcd_index = self.index;
                Ok(WatchStart::Event(Box::new(event)))
            }
            Ok(None) => Ok(WatchStart::Wait(Watcher {
                key,
                recursive,
                stream,
                since_index,
                start_index: self.index,
            })),
        }
    }

    /// Asserts the store's invariants (see the type docs).
    pub fn check_invariants(&self) {
        let mut ttls = Vec::new();
        self.root.subtree_ttls("/", &mut ttls);
        let ttls: BTreeSet<(u64, String)> = ttls.into_iter().collect();
        assert_eq!(ttls, self.ttl_index, "TTL index out of sync with the tree");
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            assert!(
                node.modified_index <= self.index,
                "node index beyond store index"
            );
            assert!(
                node.created_index <= node.modified_index,
                "created after modified"
            );
            if let Some(children) = node.children() {
                stack.extend(children.values());
            }
        }
        assert!(
            self.history.last_index() <= self.index,
            "history beyond store index"
        );
        for (expected, event) in (self.history.start_index()..).zip(self.history.events()) {
            assert_eq!(event.index(), expected, "history not contiguous");
        }
    }
}
