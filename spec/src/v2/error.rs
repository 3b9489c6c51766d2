//! The v2 error codes, messages and HTTP statuses (etcd 3.4 `etcdserver/api/v2error`).
//!
//! etcd renders a v2 error as `{"errorCode":N,"message":"...","cause":"...","index":I}`
//! (`cause` omitted when empty). The message is a pure function of the code; the cause
//! and index are data carried by [`V2Error`].

/// Every v2 error code etcd 3.4 defines, with its number, message and HTTP status as data.
///
/// Codes marked "unused by 3.4" are defined by etcd but never returned by its v2 API; they
/// are listed so a client that prints them gets etcd's exact text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum V2ErrorCode {
    /// 100 "Key not found" (HTTP 404).
    KeyNotFound,
    /// 101 "Compare failed" (HTTP 412).
    TestFailed,
    /// 102 "Not a file" (HTTP 403).
    NotFile,
    /// 103 "Reached the max number of peers in the cluster" (unused by 3.4).
    NoMorePeer,
    /// 104 "Not a directory" (HTTP 400).
    NotDir,
    /// 105 "Key already exists" (HTTP 412).
    NodeExist,
    /// 106 "The prefix of given key is a keyword in etcd" (unused by 3.4).
    KeyIsPreserved,
    /// 107 "Root is read only" (HTTP 400).
    RootReadOnly,
    /// 108 "Directory not empty" (HTTP 403).
    DirNotEmpty,
    /// 109 "Peer address has existed" (unused by 3.4).
    ExistingPeerAddr,
    /// 110 "The request requires user authentication" (HTTP 401).
    Unauthorized,
    /// 200 "Value is Required in POST form".
    ValueRequired,
    /// 201 "PrevValue is Required in POST form".
    PrevValueRequired,
    /// 202 "The given TTL in POST form is not a number".
    TtlNotANumber,
    /// 203 "The given index in POST form is not a number".
    IndexNotANumber,
    /// 204 "Value or TTL is required in POST form".
    ValueOrTtlRequired,
    /// 205 "The given timeout in POST form is not a number".
    TimeoutNotANumber,
    /// 206 "Name is required in POST form".
    NameRequired,
    /// 207 "Index or value is required".
    IndexOrValueRequired,
    /// 208 "Index and value cannot both be specified".
    IndexValueMutex,
    /// 209 "Invalid field".
    InvalidField,
    /// 210 "Invalid POST form".
    InvalidForm,
    /// 211 "Value provided on refresh".
    RefreshValue,
    /// 212 "A TTL must be provided on refresh".
    RefreshTtlRequired,
    /// 300 "Raft Internal Error" (HTTP 500).
    RaftInternal,
    /// 301 "During Leader Election" (HTTP 500).
    LeaderElect,
    /// 400 "watcher is cleared due to etcd recovery".
    WatcherCleared,
    /// 401 "The event in requested index is outdated and cleared".
    EventIndexCleared,
    /// 402 "Standby Internal Error" (unused by 3.4).
    StandbyInternal,
    /// 403 "Invalid active size" (unused by 3.4).
    InvalidActiveSize,
    /// 404 "Standby remove delay" (unused by 3.4).
    InvalidRemoveDelay,
    /// 500 "Client Internal Error" (unused by 3.4).
    ClientInternal,
}

impl V2ErrorCode {
    /// All codes, in numeric order.
    pub const ALL: [V2ErrorCode; 32] = [
        Self::KeyNotFound,
        Self::TestFailed,
        Self::NotFile,
        Self::NoMorePeer,
        Self::NotDir,
        Self::NodeExist,
        Self::KeyIsPreserved,
        Self::RootReadOnly,
        Self::DirNotEmpty,
        Self::ExistingPeerAddr,
        Self::Unauthorized,
        Self::ValueRequired,
        Self::PrevValueRequired,
        Self::TtlNotANumber,
        Self::IndexNotANumber,
        Self::ValueOrTtlRequired,
        Self::TimeoutNotANumber,
        Self::NameRequired,
        Self::IndexOrValueRequired,
        Self::IndexValueMutex,
        Self::InvalidField,
        Self::InvalidForm,
        Self::RefreshValue,
        Self::RefreshTtlRequired,
        Self::RaftInternal,
        Self::LeaderElect,
        Self::WatcherCleared,
        Self::EventIndexCleared,
        Self::StandbyInternal,
        Self::InvalidActiveSize,
        Self::InvalidRemoveDelay,
        Self::ClientInternal,
    ];

    /// The numeric `errorCode` etcd puts in the JSON body.
    pub fn code(self) -> u16 {
        match self {
            Self::KeyNotFound => 100,
            Self::TestFailed => 101,
            Self::NotFile => 102,
            Self::NoMorePeer => 103,
            Self::NotDir => 104,
            Self::NodeExist => 105,
            Self::KeyIsPreserved => 106,
            Self::RootReadOnly => 107,
            Self::DirNotEmpty => 108,
            Self::ExistingPeerAddr => 109,
            Self::Unauthorized => 110,
            Self::ValueRequired => 200,
            Self::PrevValueRequired => 201,
            Self::TtlNotANumber => 202,
            Self::IndexNotANumber => 203,
            Self::ValueOrTtlRequired => 204,
            Self::TimeoutNotANumber => 205,
            Self::NameRequired => 206,
            Self::IndexOrValueRequired => 207,
            Self::IndexValueMutex => 208,
            Self::InvalidField => 209,
            Self::InvalidForm => 210,
            Self::RefreshValue => 211,
            Self::RefreshTtlRequired => 212,
            Self::RaftInternal => 300,
            Self::LeaderElect => 301,
            Self::WatcherCleared => 400,
            Self::EventIndexCleared => 401,
            Self::StandbyInternal => 402,
            Self::InvalidActiveSize => 403,
            Self::InvalidRemoveDelay => 404,
            Self::ClientInternal => 500,
        }
    }

    /// The code for a numeric `errorCode`, if etcd defines it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// etcd's `message` text for this code, verbatim.
    pub fn message(self) -> &'static str {
        match self {
            Self::KeyNotFound => "Key not found",
            Self::TestFailed => "Compare failed",
            Self::NotFile => "Not a file",
            Self::NoMorePeer => "Reached the max number of peers in the cluster",
            Self::NotDir => "Not a directory",
            Self::NodeExist => "Key already exists",
            Self::KeyIsPreserved => "The prefix of given key is a keyword in etcd",
            Self::RootReadOnly => "Root is read only",
            Self::DirNotEmpty => "Directory not empty",
            Self::ExistingPeerAddr => "Peer address has existed",
            Self::Unauthorized => "The request requires user authentication",
            Self::ValueRequired => "Value is Required in POST form",
            Self::PrevValueRequired => "PrevValue is Required in POST form",
            Self::TtlNotANumber => "The given TTL in POST form is not a number",
            Self::IndexNotANumber => "The given index in POST form is not a number",
            Self::ValueOrTtlRequired => "Value or TTL is required in POST form",
            Self::TimeoutNotANumber => "The given timeout in POST form is not a number",
            Self::NameRequired => "Name is required in POST form",
            Self::IndexOrValueRequired => "Index or value is required",
            Self::IndexValueMutex => "Index and value cannot both be specified",
            Self::InvalidField => "Invalid field",
            Self::InvalidForm => "Invalid POST form",
            Self::RefreshValue => "Value provided on refresh",
            Self::RefreshTtlRequired => "A TTL must be provided on refresh",
            Self::RaftInternal => "Raft Internal Error",
            Self::LeaderElect => "During Leader Election",
            Self::WatcherCleared => "watcher is cleared due to etcd recovery",
            Self::EventIndexCleared => "The event in requested index is outdated and cleared",
            Self::StandbyInternal => "Standby Internal Error",
            Self::InvalidActiveSize => "Invalid active size",
            Self::InvalidRemoveDelay => "Standby remove delay",
            Self::ClientInternal => "Client Internal Error",
        }
    }

    /// The HTTP status etcd answers with (`v2error.Error.StatusCode`): 404, 403, 401,
    /// 412, 500 for the listed codes and 400 for every other code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::KeyNotFound => 404,
            Self::NotFile | Self::DirNotEmpty => 403,
            Self::Unauthorized => 401,
            Self::TestFailed | Self::NodeExist => 412,
            Self::RaftInternal | Self::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// A v2 error as etcd returns it: code, cause and the store index at the time.
///
/// `Display` is etcd's `Error()` text: `"<message> (<cause>)"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{} ({cause})", code.message())]
pub struct V2Error {
    /// The error code (gives `errorCode`, `message` and the HTTP status).
    pub code: V2ErrorCode,
    /// The `cause` field; omitted from JSON when empty.
    pub cause: String,
    /// The `index` field: the store index when the error was raised (0 for request
    /// validation errors raised before reaching the store).
    pub index: u64,
}

impl V2Error {
    /// Builds an error.
    pub fn new(code: V2ErrorCode, cause: impl Into<String>, index: u64) -> Self {
        Self {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// etcd's `trimErrorPrefix`: the v2 keys API strips the keys namespace (`/1`) from the
    /// cause before answering.
    #[must_use]
    pub fn trim_cause_prefix(mut self, prefix: &str) -> Self {
        if let Some(rest) = self.cause.strip_prefix(prefix) {
            self.cause = rest.to_string();
        }
        self
    }

    /// The JSON body etcd writes, byte for byte:
    /// `{"errorCode":N,"message":"...","cause":"...","index":I}` (cause omitted if empty).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        out.push_str("{\"errorCode\":");
        out.push_str(&self.code.code().to_string());
        out.push_str(",\"message\":");
        super::json::push_string(&mut out, self.code.message());
        if !self.cause.is_empty() {
            out.push_str(",\"cause\":");
            super::json::push_string(&mut out, &self.cause);
        }
        out.push_str(",\"index\":");
        out.push_str(&self.index.to_string());
        out.push('}');
        out
    }
}
