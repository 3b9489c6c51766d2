//! The v2 event and node shapes etcd returns (etcd 3.4 `v2store.Event`, `NodeExtern`).
//!
//! These are the domain values the server renders as JSON; [`Event::to_json`] renders them
//! exactly as etcd 3.4 does so the server and the tests share one renderer.

use super::json;

/// The `action` of a v2 event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `"get"`: a read (GET, or a quorum GET through the log).
    Get,
    /// `"create"`: PUT with `prevExist=false`, or POST (in-order key).
    Create,
    /// `"set"`: PUT without preconditions.
    Set,
    /// `"update"`: PUT with `prevExist=true` and no prevValue/prevIndex.
    Update,
    /// `"delete"`: DELETE without preconditions.
    Delete,
    /// `"compareAndSwap"`: PUT with prevValue and/or prevIndex.
    CompareAndSwap,
    /// `"compareAndDelete"`: DELETE with prevValue and/or prevIndex.
    CompareAndDelete,
    /// `"expire"`: a TTL ran out and the leader's SYNC removed the node.
    Expire,
}

impl Action {
    /// The wire text of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Create => "create",
            Self::Set => "set",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::CompareAndSwap => "compareAndSwap",
            Self::CompareAndDelete => "compareAndDelete",
            Self::Expire => "expire",
        }
    }
}

/// A node as etcd shows it (`NodeExtern`).
///
/// JSON rendering rules (Go `omitempty`): `key` omitted when empty (the root after the
/// keys prefix is trimmed), `value` present iff `Some` (even when empty), `dir` only when
/// true, `expiration`/`ttl` only for nodes with a TTL (and `ttl` only when non-zero),
/// `nodes` only when `Some` and non-empty, the indexes only when non-zero. Field order:
/// key, value, dir, expiration, ttl, nodes, modifiedIndex, createdIndex.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct NodeView {
    /// The node's path (store path, or the user path after [`Event::trim_prefix`]).
    pub key: String,
    /// The value of a file; `None` for directories and for delete/expire event nodes.
    pub value: Option<String>,
    /// True for directories.
    pub dir: bool,
    /// The listed children of a directory (hidden `_` children are never listed).
    pub nodes: Option<Vec<NodeView>>,
    /// Absolute expiration time in milliseconds since the Unix epoch, if the node has a TTL.
    pub expiration_ms: Option<u64>,
    /// Remaining TTL in seconds at the time the view was taken: etcd's
    /// `ceil((expiration - now) / 1s)` computed with Go's truncating division, so it is
    /// 0 or negative for a node that has expired but not yet been removed. Zero is omitted.
    pub ttl_s: i64,
    /// `modifiedIndex`.
    pub modified_index: u64,
    /// `createdIndex`.
    pub created_index: u64,
}

/// etcd's TTL seconds for an expiration seen at `now_ms`: ceiling for positive remainders,
/// truncation toward zero otherwise (Go `time.Duration` arithmetic).
pub fn ttl_seconds(expiration_ms: u64, now_ms: u64) -> i64 {
    let remaining_ms = i128::from(expiration_ms) - i128::from(now_ms);
    let mut ttl = remaining_ms / 1000;
    if remaining_ms % 1000 > 0 {
        ttl += 1;
    }
    i64::try_from(ttl).unwrap_or(if ttl > 0 { i64::MAX } else { i64::MIN })
}

impl NodeView {
    fn trim_prefix(&mut self, prefix: &str) {
        if let Some(rest) = self.key.strip_prefix(prefix) {
            self.key = rest.to_string();
        }
        for child in self.nodes.iter_mut().flatten() {
            child.trim_prefix(prefix);
        }
    }

    /// Renders the node as etcd's JSON, byte for byte.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.push_json(&mut out);
        out
    }

    fn push_json(&self, out: &mut String) {
        let mut fields: Vec<String> = Vec::new();
        if !self.key.is_empty() {
            fields.push(format!("\"key\":{}", json::string(&self.key)));
        }
        if let Some(value) = &self.value {
            fields.push(format!("\"value\":{}", json::string(value)));
        }
        if self.dir {
            fields.push("\"dir\":true".to_string());
        }
        if let Some(expiration_ms) = self.expiration_ms {
            fields.push(format!(
                "\"expiration\":\"{}\"",
                json::rfc3339_ms(expiration_ms)
            ));
        }
        if self.ttl_s != 0 {
            fields.push(format!("\"ttl\":{}", self.ttl_s));
        }
        if let Some(nodes) = self.nodes.as_ref().filter(|n| !n.is_empty()) {
            let rendered: Vec<String> = nodes.iter().map(NodeView::to_json).collect();
            fields.push(format!("\"nodes\":[{}]", rendered.join(",")));
        }
        if self.modified_index != 0 {
            fields.push(format!("\"modifiedIndex\":{}", self.modified_index));
        }
        if self.created_index != 0 {
            fields.push(format!("\"createdIndex\":{}", self.created_index));
        }
        out.push('{');
        out.push_str(&fields.join(","));
        out.push('}');
    }
}

/// One v2 event: the response to a v2 request, an entry of the 1000-event history, and
/// what a watcher receives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// The action.
    pub action: Action,
    /// The node after the change (for delete/expire: key, dir flag and indexes only).
    pub node: NodeView,
    /// The node before the change, if there was one.
    pub prev_node: Option<NodeView>,
    /// The store index to report in the `X-Etcd-Index` header (not in the JSON body).
    pub etcd_index: u64,
    /// A TTL refresh: recorded in the history (it consumes an index) but never delivered
    /// to watchers. Not rendered.
    pub refresh: bool,
    /// For delete, compare-and-delete and expire: every store path removed, children
    /// before parents. etcd notifies watchers on each of them (`deleted = true`). Not
    /// rendered.
    pub deleted_paths: Vec<String>,
}

impl Event {
    /// The event's index in the history (`node.modifiedIndex`).
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }

    /// etcd's `IsCreated`: the server answers a write with 201 Created (instead of 200)
    /// for a "create", and for a "set" that replaced nothing. (Watch answers are always
    /// 200.)
    pub fn is_created(&self) -> bool {
        self.action == Action::Create || (self.action == Action::Set && self.prev_node.is_none())
    }

    /// etcd's `trimEventPrefix`: strips `prefix` (the keys namespace `/1`) from every key
    /// in `node` and `prev_node`, as the v2 keys API does before answering.
    #[must_use]
    pub fn trim_prefix(mut self, prefix: &str) -> Self {
        self.node.trim_prefix(prefix);
        if let Some(prev) = self.prev_node.as_mut() {
            prev.trim_prefix(prefix);
        }
        for path in &mut self.deleted_paths {
            if let Some(rest) = path.strip_prefix(prefix) {
                *path = rest.to_string();
            }
        }
        self
    }

    /// The body for `noValueOnSuccess=true`: set, create, update and compareAndSwap
    /// answers drop `node` and `prevNode` (`{"action":"set"}`); others are unchanged.
    pub fn to_json_no_value(&self) -> String {
        match self.action {
            Action::Set | Action::Create | Action::Update | Action::CompareAndSwap => {
                let mut out = String::from("{\"action\":");
                json::push_string(&mut out, self.action.as_str());
                out.push('}');
                out
            }
            _ => self.to_json(),
        }
    }

    /// The JSON body etcd writes, byte for byte:
    /// `{"action":"...","node":{...},"prevNode":{...}}` (prevNode omitted when absent).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"action\":");
        json::push_string(&mut out, self.action.as_str());
        out.push_str(",\"node\":");
        self.node.push_json(&mut out);
        if let Some(prev) = &self.prev_node {
            out.push_str(",\"prevNode\":");
            prev.push_json(&mut out);
        }
        out.push('}');
        out
    }
}
