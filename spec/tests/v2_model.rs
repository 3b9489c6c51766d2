//! Property test: the v2 tree store against a dumb twin, a flat `BTreeMap<path, node>`
//! with etcd's rules written out longhand, over random set/mkdir/create/update/CAS/CAD/
//! delete/SYNC sequences (TTL expiry checked against a naive scan of due nodes) on a tiny key space (so collisions, directories in the way and hidden
//! names happen often).

use std::collections::BTreeMap;

use oxetcd_spec::v2::{Store, TtlOptions, V2ErrorCode};
use quickcheck::{Arbitrary, Gen, QuickCheck};

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelNode {
    expire: Option<u64>,
    dir: bool,
    value: String,
    created: u64,
    modified: u64,
}

/// The flat model: store paths to nodes; `/1` is the read-only keys root.
#[derive(Clone, Debug, Default)]
struct Model {
    index: u64,
    nodes: BTreeMap<String, ModelNode>,
}

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => p[..i].to_string(),
    }
}

/// Proper ancestors below the root, outermost first, then `p` itself.
fn chain(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in p.split('/').filter(|c| !c.is_empty()) {
        cur = format!("{cur}/{c}");
        out.push(cur.clone());
    }
    out
}

type R = Result<(u64, u64), V2ErrorCode>; // (modifiedIndex, createdIndex) of the event node

impl Model {
    fn new() -> Self {
        let mut m = Model::default();
        for ns in ["/0", "/1"] {
            m.nodes.insert(
                ns.to_string(),
                ModelNode {
                    expire: None,
                    dir: true,
                    value: String::new(),
                    created: 0,
                    modified: 0,
                },
            );
        }
        m
    }

    fn lookup(&self, p: &str) -> Result<&ModelNode, V2ErrorCode> {
        for step in chain(p) {
            let par = parent(&step);
            if par != "/" && !self.nodes[&par].dir {
                return Err(V2ErrorCode::NotDir);
            }
            if !self.nodes.contains_key(&step) {
                return Err(V2ErrorCode::KeyNotFound);
            }
        }
        self.nodes.get(p).ok_or(V2ErrorCode::KeyNotFound)
    }

    fn read_only(p: &str) -> bool {
        p == "/" || p == "/0" || p == "/1"
    }

    fn create_at(
        &mut self,
        p: &str,
        dir: bool,
        value: &str,
        replace: bool,
        expire: Option<u64>,
    ) -> R {
        if Self::read_only(p) {
            return Err(V2ErrorCode::RootReadOnly);
        }
        let chain = chain(p);
        for anc in &chain[..chain.len() - 1] {
            if self.nodes.get(anc).is_some_and(|n| !n.dir) {
                return Err(V2ErrorCode::NotDir);
            }
        }
        if let Some(n) = self.nodes.get(p) {
            if !replace {
                return Err(V2ErrorCode::NodeExist);
            }
            if n.dir {
                return Err(V2ErrorCode::NotFile);
            }
        }
        let next = self.index + 1;
        for anc in &chain[..chain.len() - 1] {
            self.nodes.entry(anc.clone()).or_insert(ModelNode {
                expire: None,
                dir: true,
                value: String::new(),
                created: next,
                modified: next,
            });
        }
        self.nodes.insert(
            p.to_string(),
            ModelNode {
                expire,
                dir,
                value: if dir {
                    String::new()
                } else {
                    value.to_string()
                },
                created: next,
                modified: next,
            },
        );
        self.index = next;
        Ok((next, next))
    }

    fn set(&mut self, p: &str, dir: bool, value: &str, expire: Option<u64>) -> R {
        match self.lookup(p) {
            Err(V2ErrorCode::KeyNotFound) | Ok(_) => {}
            Err(e) => return Err(e),
        }
        self.create_at(p, dir, value, true, expire)
    }

    /// The naive SYNC: repeatedly remove the (earliest, then smallest path) node whose
    /// expiration is due, with everything under it; one index per removal.
    fn sync(&mut self, now: u64) -> Vec<String> {
        let mut expired = Vec::new();
        loop {
            let due = self
                .nodes
                .iter()
                .filter_map(|(k, n)| n.expire.filter(|e| *e <= now).map(|e| (e, k.clone())))
                .min();
            let Some((_, k)) = due else { return expired };
            self.remove_tree(&k);
            self.index += 1;
            expired.push(k);
        }
    }

    fn compare(n: &ModelNode, prev_value: &str, prev_index: u64) -> bool {
        (prev_value.is_empty() || n.value == prev_value)
            && (prev_index == 0 || n.modified == prev_index)
    }

    fn update(&mut self, p: &str, value: &str, expire: Option<u64>) -> R {
        if Self::read_only(p) {
            return Err(V2ErrorCode::RootReadOnly);
        }
        let n = self.lookup(p)?.clone();
        if n.dir && !value.is_empty() {
            return Err(V2ErrorCode::NotFile);
        }
        let next = self.index + 1;
        let node = self.nodes.get_mut(p).expect("looked up");
        node.expire = expire;
        if !n.dir {
            node.value = value.to_string();
            node.modified = next;
        }
        self.index = next;
        Ok((next, n.created))
    }

    fn cas(&mut self, p: &str, prev_value: &str, prev_index: u64, value: &str) -> R {
        if Self::read_only(p) {
            return Err(V2ErrorCode::RootReadOnly);
        }
        let n = self.lookup(p)?.clone();
        if n.dir {
            return Err(V2ErrorCode::NotFile);
        }
        if !Self::compare(&n, prev_value, prev_index) {
            return Err(V2ErrorCode::TestFailed);
        }
        let next = self.index + 1;
        let node = self.nodes.get_mut(p).expect("looked up");
        node.value = value.to_string();
        node.modified = next;
        node.expire = None;
        self.index = next;
        Ok((next, n.created))
    }

    fn remove_tree(&mut self, p: &str) {
        let prefix = format!("{p}/");
        self.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
    }

    fn cad(&mut self, p: &str, prev_value: &str) -> R {
        let n = self.lookup(p)?.clone();
        if n.dir {
            return Err(V2ErrorCode::NotFile);
        }
        if !Self::compare(&n, prev_value, 0) {
            return Err(V2ErrorCode::TestFailed);
        }
        self.remove_tree(p);
        self.index += 1;
        Ok((self.index, n.created))
    }

    fn delete(&mut self, p: &str, dir: bool, recursive: bool) -> R {
        if Self::read_only(p) {
            return Err(V2ErrorCode::RootReadOnly);
        }
        let n = self.lookup(p)?.clone();
        let dir = dir || recursive;
        if n.dir {
            if !dir {
                return Err(V2ErrorCode::NotFile);
            }
            let prefix = format!("{p}/");
            if !recursive && self.nodes.keys().any(|k| k.starts_with(&prefix)) {
                return Err(V2ErrorCode::DirNotEmpty);
            }
        }
        self.remove_tree(p);
        self.index += 1;
        Ok((self.index, n.created))
    }

    /// The visible listing of a directory, as (key, dir, value, modified, created).
    fn listing(&self, p: &str) -> Vec<(String, bool, String, u64, u64)> {
        self.nodes
            .iter()
            .filter(|(k, _)| parent(k) == p && !k.rsplit('/').next().unwrap_or("").starts_with('_'))
            .map(|(k, n)| (k.clone(), n.dir, n.value.clone(), n.modified, n.created))
            .collect()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Set(String, String, Option<u64>),
    Mkdir(String, Option<u64>),
    Create(String, String),
    Update(String, String, Option<u64>),
    Sync(u64),
    Cas(String, String, u64, String),
    Cad(String, String),
    Delete(String, bool, bool),
}

fn key(g: &mut Gen) -> String {
    let depth = *g.choose(&[1usize, 1, 2, 2, 3]).expect("non-empty");
    let parts: Vec<&str> = (0..depth)
        .map(|_| *g.choose(&["a", "b", "_h"]).expect("non-empty"))
        .collect();
    format!("/1/{}", parts.join("/"))
}

fn value(g: &mut Gen) -> String {
    (*g.choose(&["", "x", "y"]).expect("non-empty")).to_string()
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let k = if u8::arbitrary(g) % 16 == 0 {
            "/1".to_string()
        } else {
            key(g)
        };
        // Expirations 1..=4 and SYNC times 0..=4 so ties and nested expiries happen.
        let expire = |g: &mut Gen| {
            if bool::arbitrary(g) {
                Some(1 + u64::from(u8::arbitrary(g) % 4))
            } else {
                None
            }
        };
        match u8::arbitrary(g) % 8 {
            0 => Op::Set(k, value(g), expire(g)),
            1 => Op::Mkdir(k, expire(g)),
            2 => Op::Create(k, value(g)),
            3 => Op::Update(k, value(g), expire(g)),
            7 => Op::Sync(u64::from(u8::arbitrary(g) % 5)),
            4 => Op::Cas(k, value(g), u64::from(u8::arbitrary(g) % 8), value(g)),
            5 => Op::Cad(k, value(g)),
            _ => Op::Delete(k, bool::arbitrary(g), bool::arbitrary(g)),
        }
    }
}

fn run(ops: Vec<Op>) -> bool {
    let mut store = Store::new();
    let mut model = Model::new();
    let p = TtlOptions::PERMANENT;
    // Expirations are tiny times offset past the "before 2000 means no TTL" rule.
    let base = oxetcd_spec::v2::MIN_EXPIRE_MS;
    let t = |e: &Option<u64>| TtlOptions {
        expire_at_ms: e.map(|e| base + e),
        refresh: false,
    };
    for op in &ops {
        let (got, want) = match op {
            Op::Sync(now) => {
                let got: Vec<String> = store
                    .delete_expired_keys(base + now)
                    .into_iter()
                    .map(|e| e.node.key)
                    .collect();
                let want = model.sync(*now);
                if got != want || store.index() != model.index {
                    eprintln!("sync {now}: store {got:?}, model {want:?}");
                    return false;
                }
                store.check_invariants();
                continue;
            }
            Op::Set(k, v, e) => (store.set(k, false, v, t(e), 0), model.set(k, false, v, *e)),
            Op::Mkdir(k, e) => (store.set(k, true, "", t(e), 0), model.set(k, true, "", *e)),
            Op::Create(k, v) => (
                store.create(k, false, v, false, p, 0),
                model.create_at(k, false, v, false, None),
            ),
            Op::Update(k, v, e) => (store.update(k, v, t(e), 0), model.update(k, v, *e)),
            Op::Cas(k, pv, pi, v) => (
                store.compare_and_swap(k, pv, *pi, v, p, 0),
                model.cas(k, pv, *pi, v),
            ),
            Op::Cad(k, pv) => (store.compare_and_delete(k, pv, 0, 0), model.cad(k, pv)),
            Op::Delete(k, d, r) => (store.delete(k, *d, *r, 0), model.delete(k, *d, *r)),
        };
        let got = got
            .map(|e| (e.node.modified_index, e.node.created_index))
            .map_err(|e| e.code);
        if got != want {
            eprintln!("{op:?}: store {got:?}, model {want:?}");
            return false;
        }
        if store.index() != model.index {
            return false;
        }
        store.check_invariants();
        // Every node and every listing agrees.
        for (path, n) in &model.nodes {
            let ev = store
                .get(path, false, 0)
                .expect("model node exists in store");
            if ev.node.dir != n.dir
                || ev.node.modified_index != n.modified
                || ev.node.created_index != n.created
            {
                eprintln!("node {path}: store {:?}, model {n:?}", ev.node);
                return false;
            }
            if !n.dir && ev.node.value.as_deref() != Some(n.value.as_str()) {
                return false;
            }
            if n.dir {
                let listed: Vec<_> = ev
                    .node
                    .nodes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| {
                        (
                            c.key,
                            c.dir,
                            c.value.unwrap_or_default(),
                            c.modified_index,
                            c.created_index,
                        )
                    })
                    .collect();
                if listed != model.listing(path) {
                    eprintln!(
                        "listing {path}: store {listed:?}, model {:?}",
                        model.listing(path)
                    );
                    return false;
                }
            }
        }
    }
    true
}

#[test]
fn v2_store_agrees_with_flat_map_model() {
    QuickCheck::new()
        .tests(300)
        .max_tests(600)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}
