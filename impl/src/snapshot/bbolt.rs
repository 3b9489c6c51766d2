//! The bbolt database file format, which etcd's snapshot files are: a writer that lays
//! out a fresh file from sorted buckets and a reader that walks one.
//!
//! Layout (all integers little endian, pages of `page_size` bytes, 4096 here):
//!
//! ```text
//! page        = header body                     (a page may span 1 + overflow pages)
//! header      = id:u64 flags:u16 count:u16 overflow:u32
//! flags       = 0x01 branch | 0x02 leaf | 0x04 meta | 0x10 freelist
//! meta body   = magic:u32(0xED0CDAED) version:u32(2) page_size:u32 flags:u32
//!               root:bucket freelist:u64 pgid:u64 txid:u64 checksum:u64
//!               (checksum: FNV-1a 64 of the 56 bytes before it)
//! bucket      = root:u64 sequence:u64           (root 0: an inline bucket, whose leaf
//!                                                page follows the 16 bytes in the value)
//! leaf body   = element{count} (key value){count}
//! element     = flags:u32(1: value is a bucket) pos:u32 ksize:u32 vsize:u32
//! branch body = belement{count} key{count}
//! belement    = pos:u32 ksize:u32 child:u64
//! freelist    = count free page ids:u64 (count 0xFFFF: the real count is the first u64)
//! ```
//!
//! `pos` counts from the element's own first byte. Pages 0 and 1 are the two meta pages;
//! the valid one with the higher `txid` is current. `pgid` is the high-water mark: the
//! file's pages in use, so the database size is `pgid * page_size`. A branch element's
//! key is the first key of its child. Every page below the high-water mark is either
//! reachable from the root bucket, one of the meta or freelist pages, or in the freelist
//! (bbolt's consistency check, which `etcdctl snapshot status` runs). A bucket is inline
//! when its entries fit in one leaf of at most a quarter page, header included.
//! etcd 3.4 writes no freelist page (freelist id `u64::MAX`: the free pages are found
//! by walking the tree); [`Writer`] writes an empty one at page 2, which every bbolt
//! version reads. Only the layout and these facts come from bbolt; the code is oxetcd's.

use std::io::{Seek, SeekFrom, Write};

/// The page size [`Writer`] uses (etcd's on x86-64 Linux).
pub const PAGE_SIZE: usize = 4096;
/// The meta page's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The file format version.
pub const VERSION: u32 = 2;

const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const META_BYTES: usize = 64;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF: u32 = 0x01;
/// Largest inline bucket (bbolt: a quarter page).
const INLINE_MAX: usize = PAGE_SIZE / 4;
/// The freelist page [`Writer`] writes.
const FREELIST_PGID: u64 = 2;
/// How deep a reader follows branch pages before calling the file corrupt.
const MAX_DEPTH: usize = 64;

/// A malformed bbolt file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BboltError(pub String);

fn bad(message: impl Into<String>) -> BboltError {
    BboltError(message.into())
}

/// FNV-1a, 64 bits (the meta page checksum).
#[must_use]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn to_u32(n: usize) -> std::io::Result<u32> {
    u32::try_from(n).map_err(|_| std::io::Error::other("a bbolt element of 4 GiB or more"))
}

fn page_header(out: &mut Vec<u8>, id: u64, flags: u16, count: usize, overflow: u32) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(&overflow.to_le_bytes());
}

/// One leaf entry: flags (bucket or not), key, value.
type LeafEntry = (u32, Vec<u8>, Vec<u8>);

fn leaf_size(entries: &[LeafEntry]) -> usize {
    PAGE_HEADER
        + entries
            .iter()
            .map(|(_, k, v)| ELEMENT + k.len() + v.len())
            .sum::<usize>()
}

/// A leaf page's bytes (not padded) with the given id and overflow.
fn encode_leaf(id: u64, overflow: u32, entries: &[LeafEntry]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(leaf_size(entries));
    page_header(&mut out, id, LEAF_PAGE, entries.len(), overflow);
    let mut data = ELEMENT * entries.len();
    for (i, (flags, k, v)) in entries.iter().enumerate() {
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&to_u32(data - i * ELEMENT)?.to_le_bytes());
        out.extend_from_slice(&to_u32(k.len())?.to_le_bytes());
        out.extend_from_slice(&to_u32(v.len())?.to_le_bytes());
        data += k.len() + v.len();
    }
    for (_, k, v) in entries {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    Ok(out)
}

fn encode_branch(id: u64, overflow: u32, entries: &[(Vec<u8>, u64)]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    page_header(&mut out, id, BRANCH_PAGE, entries.len(), overflow);
    let mut data = ELEMENT * entries.len();
    for (i, (k, child)) in entries.iter().enumerate() {
        out.extend_from_slice(&to_u32(data - i * ELEMENT)?.to_le_bytes());
        out.extend_from_slice(&to_u32(k.len())?.to_le_bytes());
        out.extend_from_slice(&child.to_le_bytes());
        data += k.len();
    }
    for (k, _) in entries {
        out.extend_from_slice(k);
    }
    Ok(out)
}

fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).max(1)
}

/// The bucket being written.
struct OpenBucket {
    name: Vec<u8>,
    /// Entries of the leaf being filled.
    pending: Vec<LeafEntry>,
    pending_size: usize,
    /// First key and page of each leaf written so far.
    leaves: Vec<(Vec<u8>, u64)>,
    last_key: Option<Vec<u8>>,
}

/// Writes a bbolt file of top-level buckets holding plain key/value pairs, streaming
/// the pages to `out` as pairs arrive: buckets in ascending name order, pairs in
/// ascending key order within a bucket (both are checked).
pub struct Writer<W: Write + Seek> {
    out: std::io::BufWriter<W>,
    next_pgid: u64,
    root: Vec<LeafEntry>,
    open: Option<OpenBucket>,
}

fn order_error(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("bbolt writer: {what} out of order"),
    )
}

impl<W: Write + Seek> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("next_pgid", &self.next_pgid)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a file in `out` (at its current start: `out` must be empty).
    ///
    /// # Errors
    /// Write errors.
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut writer = Writer {
            out: std::io::BufWriter::with_capacity(256 * 1024, out),
            next_pgid: FREELIST_PGID + 1,
            root: Vec::new(),
            open: None,
        };
        // The meta pages are written last (they name the root); the freelist is empty.
        writer.out.write_all(&vec![0; 2 * PAGE_SIZE])?;
        let mut freelist = Vec::with_capacity(PAGE_SIZE);
        page_header(&mut freelist, FREELIST_PGID, FREELIST_PAGE, 0, 0);
        freelist.resize(PAGE_SIZE, 0);
        writer.out.write_all(&freelist)?;
        Ok(writer)
    }

    /// Writes `page` (unpadded) at the next page id; returns the id.
    fn write_page(&mut self, page: &[u8]) -> std::io::Result<u64> {
        let id = self.next_pgid;
        let pages = pages_for(page.len());
        self.out.write_all(page)?;
        self.out
            .write_all(&vec![0; pages * PAGE_SIZE - page.len()])?;
        self.next_pgid += pages as u64;
        Ok(id)
    }

    fn overflow_for(bytes: usize) -> u32 {
        u32::try_from(pages_for(bytes) - 1).unwrap_or(u32::MAX)
    }

    fn write_leaf(&mut self, entries: &[LeafEntry]) -> std::io::Result<u64> {
        let size = leaf_size(entries);
        let page = encode_leaf(self.next_pgid, Self::overflow_for(size), entries)?;
        self.write_page(&page)
    }

    /// Writes branch levels over `children` (first key, page) until one page remains;
    /// returns the root page.
    fn write_branches(&mut self, mut children: Vec<(Vec<u8>, u64)>) -> std::io::Result<u64> {
        while children.len() > 1 {
            let mut parents = Vec::new();
            let mut group: Vec<(Vec<u8>, u64)> = Vec::new();
            let mut size = PAGE_HEADER;
            for child in children {
                let grow = ELEMENT + child.0.len();
                if !group.is_empty() && size + grow > PAGE_SIZE {
                    parents.push(self.flush_branch(&mut group, size)?);
                    size = PAGE_HEADER;
                }
                size += grow;
                group.push(child);
            }
            parents.push(self.flush_branch(&mut group, size)?);
            children = parents;
        }
        children
            .pop()
            .map(|(_, pgid)| pgid)
            .ok_or_else(|| std::io::Error::other("bbolt writer: a tree without pages"))
    }

    fn flush_branch(
        &mut self,
        group: &mut Vec<(Vec<u8>, u64)>,
        size: usize,
    ) -> std::io::Result<(Vec<u8>, u64)> {
        let first = group.first().map(|(k, _)| k.clone()).unwrap_or_default();
        let page = encode_branch(self.next_pgid, Self::overflow_for(size), group)?;
        group.clear();
        Ok((first, self.write_page(&page)?))
    }

    /// Starts the next top-level bucket (ending the open one).
    ///
    /// # Errors
    /// `InvalidInput` if `name` does not sort after the previous bucket's; write errors.
    pub fn bucket(&mut self, name: &[u8]) -> std::io::Result<()> {
        self.end_bucket()?;
        if self
            .root
            .last()
            .is_some_and(|(_, last, _)| last.as_slice() >= name)
        {
            return Err(order_error("bucket names"));
        }
        self.open = Some(OpenBucket {
            name: name.to_vec(),
            pending: Vec::new(),
            pending_size: 0,
            leaves: Vec::new(),
            last_key: None,
        });
        Ok(())
    }

    /// Adds a pair to the open bucket.
    ///
    /// # Errors
    /// `InvalidInput` with no open bucket or a key not above the previous one; write
    /// errors.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        match &self.open {
            None => return Err(order_error("a pair before any bucket is")),
            Some(open) if open.last_key.as_deref().is_some_and(|last| last >= key) => {
                return Err(order_error("keys"));
            }
            Some(_) => {}
        }
        let Some(mut open) = self.open.take() else {
            return Err(order_error("a pair before any bucket is"));
        };
        open.last_key = Some(key.to_vec());
        let grow = ELEMENT + key.len() + value.len();
        if !open.pending.is_empty() && PAGE_HEADER + open.pending_size + grow > PAGE_SIZE {
            let first = open.pending[0].1.clone();
            let pgid = self.write_leaf(&open.pending)?;
            open.leaves.push((first, pgid));
            open.pending.clear();
            open.pending_size = 0;
        }
        open.pending.push((0, key.to_vec(), value.to_vec()));
        open.pending_size += grow;
        self.open = Some(open);
        Ok(())
    }

    fn end_bucket(&mut self) -> std::io::Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let mut value = Vec::with_capacity(BUCKET_HEADER);
        if open.leaves.is_empty() && PAGE_HEADER + open.pending_size <= INLINE_MAX {
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&encode_leaf(0, 0, &open.pending)?);
        } else {
            if !open.pending.is_empty() {
                let first = open.pending[0].1.clone();
                let pgid = self.write_leaf(&open.pending)?;
                open.leaves.push((first, pgid));
            }
            let root = self.write_branches(open.leaves)?;
            value.extend_from_slice(&root.to_le_bytes());
            value.extend_from_slice(&0u64.to_le_bytes());
        }
        self.root.push((BUCKET_LEAF, open.name, value));
        Ok(())
    }

    /// Writes the root bucket and the meta pages; returns `out` (positioned at the end)
    /// and the database size in bytes.
    ///
    /// # Errors
    /// Write errors.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.end_bucket()?;
        let root_entries = std::mem::take(&mut self.root);
        // The root bucket: leaves of bucket entries, then branches over them.
        let mut leaves = Vec::new();
        let mut group: Vec<LeafEntry> = Vec::new();
        for entry in root_entries {
            let grow = ELEMENT + entry.1.len() + entry.2.len();
            if !group.is_empty() && leaf_size(&group) + grow > PAGE_SIZE {
                let first = group[0].1.clone();
                leaves.push((first, self.write_leaf(&group)?));
                group.clear();
            }
            group.push(entry);
        }
        let first = group.first().map(|e| e.1.clone()).unwrap_or_default();
        leaves.push((first, self.write_leaf(&group)?));
        let root = self.write_branches(leaves)?;
        let high_water = self.next_pgid;
        let mut out = self.out.into_inner().map_err(|e| e.into_error())?;
        out.seek(SeekFrom::Start(0))?;
        // Meta 0 carries the higher txid, so it is the current one.
        for (pgid, txid) in [(0u64, 2u64), (1, 1)] {
            let mut page = Vec::with_capacity(PAGE_SIZE);
            page_header(&mut page, pgid, META_PAGE, 0, 0);
            let mut meta = Vec::with_capacity(META_BYTES);
            meta.extend_from_slice(&MAGIC.to_le_bytes());
            meta.extend_from_slice(&VERSION.to_le_bytes());
            meta.extend_from_slice(&to_u32(PAGE_SIZE)?.to_le_bytes());
            meta.extend_from_slice(&0u32.to_le_bytes());
            meta.extend_from_slice(&root.to_le_bytes());
            meta.extend_from_slice(&0u64.to_le_bytes());
            meta.extend_from_slice(&FREELIST_PGID.to_le_bytes());
            meta.extend_from_slice(&high_water.to_le_bytes());
            meta.extend_from_slice(&txid.to_le_bytes());
            let checksum = fnv1a64(&meta);
            meta.extend_from_slice(&checksum.to_le_bytes());
            page.extend_from_slice(&meta);
            page.resize(PAGE_SIZE, 0);
            out.write_all(&page)?;
        }
        let size = high_water * PAGE_SIZE as u64;
        out.seek(SeekFrom::Start(size))?;
        out.flush()?;
        Ok((out, size))
    }
}

/// A bbolt file opened for reading (the whole file in memory).
#[derive(Debug)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    root: u64,
    high_water: u64,
}

/// Whether `bytes` starts like a bbolt file (the first meta page's magic).
#[must_use]
pub fn is_bbolt(bytes: &[u8]) -> bool {
    u32_at(bytes, PAGE_HEADER) == Some(MAGIC)
}

/// Parses the meta page at `offset`; `None` if it is not a valid one.
fn meta_at(data: &[u8], offset: usize) -> Option<(u32, u64, u64, u64)> {
    let meta = data.get(offset + PAGE_HEADER..offset + PAGE_HEADER + META_BYTES)?;
    let magic = u32_at(meta, 0)?;
    let version = u32_at(meta, 4)?;
    let checksum = u64_at(meta, 56)?;
    if magic != MAGIC || version != VERSION || checksum != fnv1a64(&meta[..56]) {
        return None;
    }
    // (page size, root, high-water mark, txid)
    Some((
        u32_at(meta, 8)?,
        u64_at(meta, 16)?,
        u64_at(meta, 40)?,
        u64_at(meta, 48)?,
    ))
}

impl<'a> Db<'a> {
    /// Opens `data`: the current meta page is the valid one with the higher txid.
    ///
    /// # Errors
    /// [`BboltError`] if neither meta page is valid or the file is shorter than the
    /// meta says.
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, BboltError> {
        let first = meta_at(data, 0);
        let page_size = first.map_or(PAGE_SIZE, |m| m.0 as usize);
        if !(512..=1 << 20).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(bad(format!("invalid page size {page_size}")));
        }
        let second = meta_at(data, page_size);
        let (_, root, high_water, _) = match (first, second) {
            (Some(a), Some(b)) => {
                if b.3 > a.3 {
                    b
                } else {
                    a
                }
            }
            (Some(m), None) | (None, Some(m)) => m,
            (None, None) => return Err(bad("no valid meta page (not a bbolt file?)")),
        };
        let needed = high_water
            .checked_mul(page_size as u64)
            .ok_or_else(|| bad("high-water mark overflows"))?;
        if (data.len() as u64) < needed {
            return Err(bad(format!(
                "file is {} bytes, the database needs {needed}",
                data.len()
            )));
        }
        Ok(Db {
            data,
            page_size,
            root,
            high_water,
        })
    }

    /// The database size (`pgid * page_size`), what `etcdctl snapshot status` reports.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.high_water * self.page_size as u64
    }

    /// The page size.
    #[must_use]
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The page `pgid` including its overflow pages.
    fn page(&self, pgid: u64) -> Result<&'a [u8], BboltError> {
        if pgid < 2 || pgid >= self.high_water {
            return Err(bad(format!(
                "page {pgid} out of bounds (high water {})",
                self.high_water
            )));
        }
        let start = usize::try_from(pgid).map_err(|_| bad("page id"))? * self.page_size;
        let header = self
            .data
            .get(start..start + PAGE_HEADER)
            .ok_or_else(|| bad(format!("page {pgid} beyond the file")))?;
        let overflow = u32_at(header, 12).unwrap_or(0) as usize;
        let end = start + (overflow + 1) * self.page_size;
        self.data
            .get(start..end)
            .ok_or_else(|| bad(format!("page {pgid} overflows the file")))
    }

    /// Calls `each(bucket, key, value)` for every pair of every top-level bucket, in
    /// bucket name then key order; `each(bucket, None)` first for every bucket (so
    /// empty buckets are seen too).
    ///
    /// # Errors
    /// [`BboltError`] for a malformed file (nested buckets included), or `each`'s.
    pub fn for_each(
        &self,
        mut each: impl FnMut(&[u8], Option<(&[u8], &[u8])>) -> Result<(), BboltError>,
    ) -> Result<(), BboltError> {
        let mut buckets: Vec<(&[u8], &[u8])> = Vec::new();
        self.walk(self.root, 0, &mut |flags, key, value| {
            if flags & BUCKET_LEAF == 0 {
                return Err(bad("a plain pair in the root bucket"));
            }
            buckets.push((key, value));
            Ok(())
        })?;
        for (name, header) in buckets {
            each(name, None)?;
            let root = u64_at(header, 0).ok_or_else(|| bad("short bucket header"))?;
            let mut pair = |flags: u32, key: &[u8], value: &[u8]| {
                if flags & BUCKET_LEAF != 0 {
                    return Err(bad(format!(
                        "nested bucket in {}",
                        String::from_utf8_lossy(name)
                    )));
                }
                each(name, Some((key, value)))
            };
            if root == 0 {
                let inline = header
                    .get(BUCKET_HEADER..)
                    .ok_or_else(|| bad("short inline bucket"))?;
                leaf_elements(inline, &mut pair)?;
            } else {
                self.walk(root, 0, &mut pair)?;
            }
        }
        Ok(())
    }

    fn walk(
        &self,
        pgid: u64,
        depth: usize,
        each: &mut dyn FnMut(u32, &'a [u8], &'a [u8]) -> Result<(), BboltError>,
    ) -> Result<(), BboltError> {
        if depth > MAX_DEPTH {
            return Err(bad("tree too deep (a cycle?)"));
        }
        let page = self.page(pgid)?;
        let flags = u16_at(page, 8).unwrap_or(0);
        match flags {
            LEAF_PAGE => leaf_elements(page, each),
            BRANCH_PAGE => {
                let count = usize::from(u16_at(page, 10).unwrap_or(0));
                for i in 0..count {
                    let at = PAGE_HEADER + i * ELEMENT;
                    let child = u64_at(page, at + 8)
                        .ok_or_else(|| bad(format!("page {pgid}: truncated branch")))?;
                    self.walk(child, depth + 1, each)?;
                }
                Ok(())
            }
            other => Err(bad(format!("page {pgid}: unexpected page type {other:#x}"))),
        }
    }
}

/// Calls `each(flags, key, value)` for the elements of the leaf page `page`.
fn leaf_elements<'a>(
    page: &'a [u8],
    each: &mut dyn FnMut(u32, &'a [u8], &'a [u8]) -> Result<(), BboltError>,
) -> Result<(), BboltError> {
    if u16_at(page, 8) != Some(LEAF_PAGE) {
        return Err(bad("expected a leaf page"));
    }
    let count = usize::from(u16_at(page, 10).unwrap_or(0));
    for i in 0..count {
        let at = PAGE_HEADER + i * ELEMENT;
        let field = |n: usize| u32_at(page, at + 4 * n).map(|v| v as usize);
        let (Some(flags), Some(pos), Some(ksize), Some(vsize)) =
            (field(0), field(1), field(2), field(3))
        else {
            return Err(bad("truncated leaf element"));
        };
        let start = at + pos;
        let key = page
            .get(start..start + ksize)
            .ok_or_else(|| bad("leaf key beyond its page"))?;
        let value = page
            .get(start + ksize..start + ksize + vsize)
            .ok_or_else(|| bad("leaf value beyond its page"))?;
        each(u32::try_from(flags).unwrap_or(0), key, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Buckets = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

    fn write(buckets: &Buckets) -> Vec<u8> {
        let mut writer = Writer::new(std::io::Cursor::new(Vec::new())).unwrap();
        for (name, pairs) in buckets {
            writer.bucket(name).unwrap();
            for (k, v) in pairs {
                writer.put(k, v).unwrap();
            }
        }
        let (out, size) = writer.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, size);
        bytes
    }

    fn read(bytes: &[u8]) -> Buckets {
        let db = Db::open(bytes).unwrap();
        let mut out = Buckets::new();
        db.for_each(|name, pair| {
            let pairs = out.entry(name.to_vec()).or_default();
            if let Some((k, v)) = pair {
                pairs.push((k.to_vec(), v.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        out
    }

    /// Every page below the high-water mark is reachable exactly once or is a meta or
    /// freelist page (bbolt's consistency check).
    fn assert_consistent(bytes: &[u8]) {
        let db = Db::open(bytes).unwrap();
        let mut seen = vec![0u32; usize::try_from(db.high_water).unwrap()];
        seen[0] = 1;
        seen[1] = 1;
        seen[2] = 1;
        fn mark(db: &Db<'_>, pgid: u64, seen: &mut [u32]) {
            let page = db.page(pgid).unwrap();
            let overflow = u32_at(page, 12).unwrap() as u64;
            for p in pgid..=pgid + overflow {
                seen[usize::try_from(p).unwrap()] += 1;
            }
            let flags = u16_at(page, 8).unwrap();
            let count = usize::from(u16_at(page, 10).unwrap());
            for i in 0..count {
                let at = PAGE_HEADER + i * ELEMENT;
                if flags == BRANCH_PAGE {
                    mark(db, u64_at(page, at + 8).unwrap(), seen);
                } else if u32_at(page, at).unwrap() & BUCKET_LEAF != 0 {
                    let pos = u32_at(page, at + 4).unwrap() as usize;
                    let ksize = u32_at(page, at + 8).unwrap() as usize;
                    let root = u64_at(page, at + pos + ksize).unwrap();
                    if root != 0 {
                        mark(db, root, seen);
                    }
                }
            }
        }
        mark(&db, db.root, &mut seen);
        assert!(seen.iter().all(|n| *n == 1), "page references: {seen:?}");
    }

    fn pair(k: impl Into<Vec<u8>>, v: impl Into<Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
        (k.into(), v.into())
    }

    #[test]
    fn small_buckets_are_inline_and_read_back() {
        let mut buckets = Buckets::new();
        buckets.insert(b"alarm".to_vec(), Vec::new());
        buckets.insert(b"meta".to_vec(), vec![pair("consistent_index", [0u8; 8])]);
        let bytes = write(&buckets);
        // Meta pages, freelist, one root leaf holding both buckets inline.
        assert_eq!(bytes.len(), 4 * PAGE_SIZE);
        assert_eq!(read(&bytes), buckets);
        assert_consistent(&bytes);
        assert!(is_bbolt(&bytes));
    }

    #[test]
    fn large_buckets_split_into_leaves_branches_and_overflow_pages() {
        let mut buckets = Buckets::new();
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u32)
            .map(|i| pair(i.to_be_bytes().to_vec(), format!("value-{i}")))
            .collect();
        buckets.insert(b"key".to_vec(), keys);
        buckets.insert(
            b"big".to_vec(),
            vec![pair("a", vec![7u8; 3 * PAGE_SIZE]), pair("b", "small")],
        );
        buckets.insert(b"inline".to_vec(), vec![pair("x", "y")]);
        let bytes = write(&buckets);
        assert_eq!(read(&bytes), buckets);
        assert_consistent(&bytes);
    }

    #[test]
    fn many_buckets_make_a_root_bucket_of_several_pages() {
        let mut buckets = Buckets::new();
        for i in 0..40u32 {
            let pairs = (0..30u32)
                .map(|j| pair(j.to_be_bytes().to_vec(), vec![b'v'; 20]))
                .collect();
            buckets.insert(format!("bucket{i:03}").into_bytes(), pairs);
        }
        let bytes = write(&buckets);
        assert_eq!(read(&bytes), buckets);
        assert_consistent(&bytes);
    }

    #[test]
    fn out_of_order_input_is_refused() {
        let mut writer = Writer::new(std::io::Cursor::new(Vec::new())).unwrap();
        writer.bucket(b"b").unwrap();
        writer.put(b"2", b"").unwrap();
        assert!(writer.put(b"1", b"").is_err());
        assert!(writer.bucket(b"a").is_err());
    }

    #[test]
    fn damaged_meta_pages_and_truncation_are_refused() {
        let mut buckets = Buckets::new();
        buckets.insert(b"k".to_vec(), vec![pair("a", "b")]);
        let bytes = write(&buckets);
        // One damaged meta page: the other one still opens the file.
        let mut one = bytes.clone();
        one[PAGE_HEADER + 20] ^= 1;
        assert_eq!(read(&one), buckets);
        let mut both = one.clone();
        both[PAGE_SIZE + PAGE_HEADER + 20] ^= 1;
        assert!(Db::open(&both).is_err());
        assert!(Db::open(&bytes[..2 * PAGE_SIZE]).is_err());
        assert!(Db::open(b"not a database").is_err());
    }

    /// A snapshot saved by `etcdctl snapshot save` from etcd 3.4.23 (keys `foo`, `k2`
    /// deleted, `leased` on a lease, users root/alice/bob, role r1, compacted at 3).
    const ETCD_SNAPSHOT: &[u8] = include_bytes!("testdata/etcd-3.4.23.db");

    #[test]
    fn reads_a_snapshot_written_by_etcd() {
        let file = ETCD_SNAPSHOT;
        let body = &file[..file.len() - 32];
        let db = Db::open(body).unwrap();
        assert_eq!(db.size(), body.len() as u64);
        let buckets = read(body);
        let names: Vec<String> = buckets
            .keys()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "alarm",
                "auth",
                "authRoles",
                "authUsers",
                "cluster",
                "key",
                "lease",
                "members",
                "members_removed",
                "meta"
            ]
        );
        let users: Vec<&[u8]> = buckets[&b"authUsers".to_vec()]
            .iter()
            .map(|(k, _)| k.as_slice())
            .collect();
        assert_eq!(users, [&b"alice"[..], b"bob", b"root"]);
        assert_eq!(buckets[&b"key".to_vec()].len(), 4);
        assert_eq!(
            buckets[&b"cluster".to_vec()],
            vec![pair("clusterVersion", "3.4.0")]
        );
    }
}
