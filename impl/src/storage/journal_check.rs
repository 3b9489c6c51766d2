//! Before fjall opens a database: a read-only walk of its journal files that tells a torn
//! tail (normal after a crash) from damage in the middle, and notices missing files.
//!
//! Why: on recovery fjall keeps a journal up to the first entry it cannot decode and
//! truncates the file there. At the tail that is right (a batch half written when the
//! process died was never synced, so never acknowledged), but a damaged byte in the
//! middle would make it drop every later batch too, synced and acknowledged ones
//! included, without an error. The walk below finds where fjall would stop (the end of
//! the last complete batch) and refuses the data dir if a complete batch follows that
//! point: a torn tail never contains one.
//!
//! The journal format read here is fjall 3's (`journal/entry.rs`): a sequence of
//! entries, each a tag byte then its fields, little-endian:
//!
//! ```text
//! start = 1 item_count:u32 seqno:u64
//! item  = 2 value_type:u8 compression:u8 keyspace:u64 key_len:u16 value_len:u32
//!         disk_len:u32 key value(disk_len)
//! end   = 3 checksum:u64 "FJL" 3
//! clear = 4 keyspace:u64
//! ```
//!
//! Files are preallocated with zeros; a zero tag ends the written part. Checksums are
//! fjall's to check (it reports a mismatch as an error on its own).

use std::path::{Path, PathBuf};

use super::StorageError;

const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
/// The trailer of every batch end marker.
const END_MAGIC: &[u8; 4] = b"FJL\x03";
const START_LEN: usize = 1 + 4 + 8;
const ITEM_HEADER_LEN: usize = 1 + 1 + 1 + 8 + 2 + 4 + 4;
const END_LEN: usize = 1 + 8 + END_MAGIC.len();
const CLEAR_LEN: usize = 1 + 8;

/// Where a journal's readable part ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Walk {
    /// End of the last complete batch: fjall keeps the file up to here.
    pub kept: usize,
    /// Offset of a complete batch end marker after `kept`, if any (damage, not a
    /// torn tail).
    pub complete_batch_after: Option<usize>,
}

/// Walks one journal's bytes.
pub(crate) fn walk(bytes: &[u8]) -> Walk {
    let mut pos = 0;
    let mut kept = 0;
    let mut in_batch = false;
    let field = |at: usize, len: usize| bytes.get(at..at + len);
    while let Some(&tag) = bytes.get(pos) {
        let next = match tag {
            TAG_START if !in_batch && field(pos, START_LEN).is_some() => {
                in_batch = true;
                pos + START_LEN
            }
            TAG_ITEM if in_batch => {
                let Some(header) = field(pos, ITEM_HEADER_LEN) else {
                    break;
                };
                let key_len = usize::from(u16::from_le_bytes([header[11], header[12]]));
                let disk_len = u32::from_le_bytes([header[17], header[18], header[19], header[20]]);
                let Ok(disk_len) = usize::try_from(disk_len) else {
                    break;
                };
                let end = pos + ITEM_HEADER_LEN + key_len + disk_len;
                if end > bytes.len() {
                    break;
                }
                end
            }
            TAG_END if in_batch => {
                if field(pos + 9, END_MAGIC.len()) != Some(END_MAGIC.as_slice()) {
                    break;
                }
                in_batch = false;
                kept = pos + END_LEN;
                kept
            }
            TAG_CLEAR if in_batch && field(pos, CLEAR_LEN).is_some() => pos + CLEAR_LEN,
            _ => break,
        };
        pos = next;
    }
    let complete_batch_after = bytes[kept..]
        .windows(END_LEN)
        .position(|window| window[0] == TAG_END && &window[9..] == END_MAGIC)
        .map(|offset| kept + offset);
    Walk {
        kept,
        complete_batch_after,
    }
}

/// Checks the fjall database at `db_path` before it is opened: every journal file is
/// walked (see the module docs) and an existing database must have a journal.
///
/// # Errors
/// [`StorageError::Corrupt`] naming the damaged or missing file.
pub(crate) fn check(db_path: &Path) -> Result<(), StorageError> {
    let corrupt = |what: String| StorageError::Corrupt {
        path: db_path.to_path_buf(),
        what,
    };
    let Ok(entries) = std::fs::read_dir(db_path) else {
        return Ok(()); // a new database: fjall creates it
    };
    let mut journals: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jnl"))
        .collect();
    journals.sort();
    if journals.is_empty() && db_path.join("version").exists() {
        return Err(corrupt(format!(
            "its journal ({}/*.jnl) is missing: the writes not yet flushed to tables are gone",
            db_path.display()
        )));
    }
    for journal in journals {
        let bytes = std::fs::read(&journal)
            .map_err(|error| corrupt(format!("journal {}: {error}", journal.display())))?;
        let walk = walk(&bytes);
        if let Some(at) = walk.complete_batch_after {
            return Err(corrupt(format!(
                "journal {} is damaged at byte {}: complete, possibly acknowledged writes \
                 follow (a batch ends at byte {at}) and recovering would drop them; \
                 refusing to start (restore the data dir from a backup)",
                journal.display(),
                walk.kept
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![TAG_START];
        out.extend_from_slice(&u32::try_from(items.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&7u64.to_le_bytes());
        for (key, value) in items {
            out.extend_from_slice(&[TAG_ITEM, 0, 0]);
            out.extend_from_slice(&3u64.to_le_bytes());
            out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
            let len = u32::try_from(value.len()).unwrap().to_le_bytes();
            out.extend_from_slice(&len);
            out.extend_from_slice(&len);
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out.push(TAG_END);
        out.extend_from_slice(&0xdead_beef_u64.to_le_bytes());
        out.extend_from_slice(END_MAGIC);
        out
    }

    fn journal(batches: &[Vec<u8>], zeros: usize) -> Vec<u8> {
        let mut out: Vec<u8> = batches.concat();
        out.extend(std::iter::repeat_n(0, zeros));
        out
    }

    #[test]
    fn a_clean_preallocated_journal_is_kept_whole() {
        let one = batch(&[(b"a", b"1"), (b"b", b"22")]);
        let two = batch(&[(b"c", b"333")]);
        let bytes = journal(&[one.clone(), two.clone()], 4096);
        let walk = walk(&bytes);
        assert_eq!(walk.kept, one.len() + two.len());
        assert_eq!(walk.complete_batch_after, None);
    }

    #[test]
    fn a_torn_last_batch_is_a_tail_not_damage() {
        let one = batch(&[(b"a", b"1")]);
        let two = batch(&[(b"b", b"2"), (b"c", b"3")]);
        for cut in 1..two.len() {
            let bytes = journal(&[one.clone(), two[..cut].to_vec()], 100);
            let walk = walk(&bytes);
            assert_eq!(walk.kept, one.len(), "cut at {cut}");
            assert_eq!(walk.complete_batch_after, None, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_byte_before_complete_batches_is_damage() {
        let one = batch(&[(b"a", b"1")]);
        let two = batch(&[(b"b", b"2")]);
        let three = batch(&[(b"c", b"3")]);
        let mut bytes = journal(&[one.clone(), two, three], 100);
        // The tag of the second batch's item.
        bytes[one.len() + START_LEN] = 0x7f;
        let walk = walk(&bytes);
        assert_eq!(walk.kept, one.len());
        assert!(walk.complete_batch_after.is_some(), "{walk:?}");
    }

    #[test]
    fn a_database_without_its_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path()).is_ok(), "a new, empty database");
        std::fs::write(dir.path().join("version"), b"3").unwrap();
        let error = check(dir.path()).unwrap_err().to_string();
        assert!(error.contains("journal"), "{error}");
        let mut bytes = journal(&[batch(&[(b"a", b"1")])], 10);
        std::fs::write(dir.path().join("0.jnl"), &bytes).unwrap();
        assert!(check(dir.path()).is_ok());
        bytes.splice(0..0, [9u8]);
        std::fs::write(dir.path().join("0.jnl"), &bytes).unwrap();
        let error = check(dir.path()).unwrap_err().to_string();
        assert!(error.contains("0.jnl is damaged at byte 0"), "{error}");
    }
}
