//! Revisions: the logical clock of the key-value store.
//!
//! etcd 3.4 behaviour: every write transaction takes the next *main* revision; the changes
//! inside it are numbered by *sub* revision from 0. A fresh store is at main revision 1
//! (so the first write gets revision 2). In the `key` bucket a revision is stored as
//! 8 bytes big-endian main, the byte `_`, 8 bytes big-endian sub, and a trailing `t`
//! when the record is a tombstone, so byte order is revision order.

/// One point in the store's history: `main` orders write transactions, `sub` orders the
/// changes inside one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The write transaction's revision (what clients see as `mod_revision`).
    pub main: i64,
    /// The change's position inside its transaction, from 0.
    pub sub: i64,
}

/// Length of an encoded revision without the tombstone mark.
pub const REVISION_BYTES: usize = 17;

/// The mark byte that follows a tombstone's revision in the `key` bucket.
pub const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    /// A revision from its parts.
    #[must_use]
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The `key`-bucket key of this revision: `main` BE, `_`, `sub` BE, then `t` if
    /// `tombstone`.
    #[must_use]
    pub fn to_key_bytes(self, tombstone: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(REVISION_BYTES + 1);
        out.extend_from_slice(&self.main.to_be_bytes());
        out.push(b'_');
        out.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            out.push(TOMBSTONE_MARK);
        }
        out
    }

    /// Parses a `key`-bucket key: the revision and whether it marks a tombstone.
    /// `None` if the bytes are not a well-formed revision key.
    #[must_use]
    pub fn from_key_bytes(bytes: &[u8]) -> Option<(Self, bool)> {
        let tombstone = match bytes.len() {
            REVISION_BYTES => false,
            n if n == REVISION_BYTES + 1 && bytes[REVISION_BYTES] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if bytes[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(bytes[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
        Some((Self { main, sub }, tombstone))
    }
}
