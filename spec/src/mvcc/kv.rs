//! Key-value records and watch events, and the byte form of a record in the `key` bucket.
//!
//! etcd 3.4 behaviour: the `key` bucket maps a revision (see [`super::revision`]) to the
//! protobuf encoding of `mvccpb.KeyValue` (fields 1 key, 2 create_revision,
//! 3 mod_revision, 4 version, 5 value, 6 lease; zero values omitted, in field order).
//! A tombstone record holds only the key. Using etcd's exact bytes makes
//! [`super::Store::hash_kv`] equal to etcd's `HashKV` for the same history.

use crate::lease::LeaseId;

/// One version of one key, as clients see it (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Main revision of the put that created the key's current generation.
    pub create_revision: i64,
    /// Main revision of the last change to the key.
    pub mod_revision: i64,
    /// Number of puts since the key was created; 1 for the create.
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// Lease attached to the key; [`LeaseId::NONE`] for none.
    pub lease: LeaseId,
}

/// What a watch event reports (etcd's `mvccpb.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change as a watcher sees it (etcd's `mvccpb.Event`).
///
/// For [`EventKind::Delete`], `kv` holds only the key and `mod_revision` (the deletion's
/// revision), exactly as etcd sends it. `prev_kv` is the key's value at
/// `mod_revision - 1` when that is readable (not compacted) and the event is not a
/// create (a put with version 1); watchers that did not ask for it drop it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key-value after the change.
    pub kv: KeyValue,
    /// The key-value before the change, if any and still readable.
    pub prev_kv: Option<KeyValue>,
}

/// Why stored bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated input")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("varint overflow")]
    VarintOverflow,
    /// A field number or wire type this format does not have.
    #[error("unexpected field {field} with wire type {wire_type}")]
    UnexpectedField {
        /// Protobuf field number.
        field: u64,
        /// Protobuf wire type.
        wire_type: u64,
    },
}

/// Appends a protobuf varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a protobuf varint at `*pos`.
pub(crate) fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *bytes.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::VarintOverflow)
}

fn put_int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        put_varint(out, field << 3);
        put_varint(out, v as u64);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, v: &[u8]) {
    if !v.is_empty() {
        put_varint(out, (field << 3) | 2);
        put_varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

/// One decoded protobuf field: number and either an integer or a byte string.
pub(crate) enum PbField<'a> {
    Int(u64, i64),
    Bytes(u64, &'a [u8]),
}

/// Reads every field of a protobuf message that uses only varint and length-delimited
/// fields.
pub(crate) fn pb_fields(bytes: &[u8]) -> Result<Vec<PbField<'_>>, DecodeError> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < bytes.len() {
        let tag = get_varint(bytes, &mut pos)?;
        let (field, wire_type) = (tag >> 3, tag & 7);
        match wire_type {
            0 => fields.push(PbField::Int(field, get_varint(bytes, &mut pos)? as i64)),
            2 => {
                let len = usize::try_from(get_varint(bytes, &mut pos)?)
                    .map_err(|_| DecodeError::Truncated)?;
                let end = pos.checked_add(len).ok_or(DecodeError::Truncated)?;
                let v = bytes.get(pos..end).ok_or(DecodeError::Truncated)?;
                pos = end;
                fields.push(PbField::Bytes(field, v));
            }
            _ => return Err(DecodeError::UnexpectedField { field, wire_type }),
        }
    }
    Ok(fields)
}

impl KeyValue {
    /// etcd's protobuf bytes of this record (`mvccpb.KeyValue.Marshal`).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        put_bytes_field(&mut out, 1, &self.key);
        put_int_field(&mut out, 2, self.create_revision);
        put_int_field(&mut out, 3, self.mod_revision);
        put_int_field(&mut out, 4, self.version);
        put_bytes_field(&mut out, 5, &self.value);
        put_int_field(&mut out, 6, self.lease.0);
        out
    }

    /// Parses [`KeyValue::encode`]'s output (any protobuf field order is accepted).
    ///
    /// # Errors
    /// [`DecodeError`] on malformed bytes or unknown fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut kv = Self::default();
        for f in pb_fields(bytes)? {
            match f {
                PbField::Bytes(1, v) => kv.key = v.to_vec(),
                PbField::Int(2, v) => kv.create_revision = v,
                PbField::Int(3, v) => kv.mod_revision = v,
                PbField::Int(4, v) => kv.version = v,
                PbField::Bytes(5, v) => kv.value = v.to_vec(),
                PbField::Int(6, v) => kv.lease = LeaseId(v),
                PbField::Int(field, _) => {
                    return Err(DecodeError::UnexpectedField {
                        field,
                        wire_type: 0,
                    });
                }
                PbField::Bytes(field, _) => {
                    return Err(DecodeError::UnexpectedField {
                        field,
                        wire_type: 2,
                    });
                }
            }
        }
        Ok(kv)
    }
}
