//! Accepts the `:authority` etcdctl 3.4 sends when its endpoint carries a scheme.
//!
//! grpc-go (in etcdctl 3.4) sends `:authority: http://127.0.0.1:2379` for
//! `--endpoints=http://127.0.0.1:2379`; etcd accepts it, but the `h2` crate rejects the
//! request with PROTOCOL_ERROR before any service runs. [`AuthorityFixStream`] sits between
//! an accepted client connection and hyper: for connections that open with the HTTP/2
//! preface it follows the client's frame stream, decodes every header block with the
//! client's HPACK context and, when an `:authority` is not one `h2` accepts but holds a URL,
//! replaces it by the URL's `host:port`. Everything else (HTTP/1.1 connections, non-header
//! frames, header blocks that need no change) is passed through byte for byte.
//!
//! Once one block has been rewritten, the server's HPACK table no longer follows the
//! client's, so every later block on that connection is re-encoded as literals without
//! indexing (which leave the server's table alone).

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which the server does not raise: re-emitted
/// header blocks are split into frames no larger than this.
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// The server's SETTINGS_HEADER_TABLE_SIZE (the HTTP/2 default; h2 does not change it).
const HEADER_TABLE_SIZE: usize = 4_096;
/// A header block larger than this is not inspected (h2 refuses such lists anyway).
const MAX_BLOCK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting to see whether the connection opens with the HTTP/2 preface.
    Detect,
    /// Not HTTP/2 (or not inspectable): bytes pass through untouched.
    Passthrough,
    /// Following HTTP/2 frames.
    Frames,
    /// The stream cannot be continued consistently (undecodable block after a rewrite).
    Broken,
}

/// A header block being collected (HEADERS then CONTINUATION frames up to END_HEADERS).
#[derive(Debug)]
struct Block {
    raw: Vec<u8>,
    fragment: Vec<u8>,
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
}

/// The byte-level core: client bytes in, bytes for the server out.
pub struct AuthorityFix {
    mode: Mode,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of the current non-header frame still to pass through.
    skip: usize,
    block: Option<Block>,
    decoder: fluke_hpack::Decoder<'static>,
    transcode: bool,
}

impl std::fmt::Debug for AuthorityFix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("mode", &self.mode)
            .field("transcode", &self.transcode)
            .finish_non_exhaustive()
    }
}

impl Default for AuthorityFix {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorityFix {
    /// A fresh connection.
    pub fn new() -> AuthorityFix {
        let mut decoder = fluke_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        AuthorityFix {
            mode: Mode::Detect,
            input: Vec::new(),
            output: Vec::new(),
            skip: 0,
            block: None,
            decoder,
            transcode: false,
        }
    }

    /// Takes bytes read from the client.
    ///
    /// # Errors
    /// `InvalidData` once the stream cannot be continued consistently.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.input.extend_from_slice(bytes);
        self.process();
        if self.mode == Mode::Broken {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "undecodable HTTP/2 header block",
            ));
        }
        Ok(())
    }

    /// The client closed its side: whatever is held back goes out unchanged.
    pub fn finish(&mut self) {
        if let Some(block) = self.block.take() {
            self.output.extend_from_slice(&block.raw);
        }
        self.output.append(&mut self.input);
    }

    /// Whether everything from here on passes through untouched (not HTTP/2, or given up
    /// consistently), with nothing held back.
    pub fn is_passthrough(&self) -> bool {
        self.mode == Mode::Passthrough && self.input.is_empty() && self.output.is_empty()
    }

    /// Bytes ready for the server.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Drops `count` bytes from the front of [`AuthorityFix::output`].
    pub fn consume(&mut self, count: usize) {
        self.output.drain(..count.min(self.output.len()));
    }

    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Broken => return,
                Mode::Detect => {
                    if self.input.len() < PREFACE.len() {
                        if !PREFACE.starts_with(&self.input) {
                            self.mode = Mode::Passthrough;
                            continue;
                        }
                        return;
                    }
                    if self.input.starts_with(PREFACE) {
                        self.output.extend(self.input.drain(..PREFACE.len()));
                        self.mode = Mode::Frames;
                    } else {
                        self.mode = Mode::Passthrough;
                    }
                }
                Mode::Passthrough => {
                    if let Some(block) = self.block.take() {
                        self.output.extend_from_slice(&block.raw);
                    }
                    self.output.append(&mut self.input);
                    return;
                }
                Mode::Frames => {
                    if !self.step_frame() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the next frame (or part of one); false when more input is needed.
    fn step_frame(&mut self) -> bool {
        if self.skip > 0 {
            let count = self.skip.min(self.input.len());
            self.output.extend(self.input.drain(..count));
            self.skip -= count;
            return self.skip == 0;
        }
        let Some(header) = self.input.get(..FRAME_HEADER_LEN) else {
            return false;
        };
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let kind = header[3];
        let flags = header[4];
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let header_frame = kind == HEADERS || kind == CONTINUATION;
        if !header_frame && self.block.is_none() {
            self.skip = FRAME_HEADER_LEN + length;
            return true;
        }
        let open_block_mismatch = match &self.block {
            Some(block) => kind != CONTINUATION || stream != block.stream,
            None => kind == CONTINUATION,
        };
        if open_block_mismatch || length > MAX_BLOCK_BYTES {
            // A protocol error h2 reports itself: give it the bytes as they came.
            self.give_up();
            return true;
        }
        if self.input.len() < FRAME_HEADER_LEN + length {
            return false;
        }
        let frame: Vec<u8> = self.input.drain(..FRAME_HEADER_LEN + length).collect();
        let payload = &frame[FRAME_HEADER_LEN..];
        if kind == HEADERS {
            let Some((priority, fragment)) = split_headers_payload(flags, payload) else {
                self.output.extend_from_slice(&frame);
                self.give_up();
                return true;
            };
            self.block = Some(Block {
                raw: Vec::new(),
                fragment: fragment.to_vec(),
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
            });
        } else if let Some(block) = &mut self.block {
            block.fragment.extend_from_slice(payload);
        }
        let too_big = match &mut self.block {
            Some(block) => {
                block.raw.extend_from_slice(&frame);
                block.raw.len() > MAX_BLOCK_BYTES
            }
            None => false,
        };
        if too_big {
            self.give_up();
        } else if flags & END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.finish_block(block);
        }
        true
    }

    /// Stops inspecting: pass through from here on if the server's HPACK state still
    /// follows the client's, otherwise the connection cannot go on.
    fn give_up(&mut self) {
        self.mode = if self.transcode {
            Mode::Broken
        } else {
            Mode::Passthrough
        };
    }

    fn finish_block(&mut self, block: Block) {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut fixed = false;
        let mut authority_seen = false;
        let decoder = &mut self.decoder;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode_with_cb(&block.fragment, |name: Cow<[u8]>, value: Cow<[u8]>| {
                let value = if name.as_ref() == b":authority" {
                    authority_seen = true;
                    match fix_authority(&value) {
                        Some(new) => {
                            fixed = true;
                            new
                        }
                        None => value.into_owned(),
                    }
                } else {
                    value.into_owned()
                };
                fields.push((name.into_owned(), value));
            })
        }));
        if !matches!(decoded, Ok(Ok(()))) {
            if !self.transcode {
                self.output.extend_from_slice(&block.raw);
            }
            self.give_up();
            return;
        }
        if !fixed && !self.transcode {
            self.output.extend_from_slice(&block.raw);
            if authority_seen {
                // A client sends one authority per connection: the first request's was
                // fine, so the rest of the connection passes through uninspected (HPACK
                // decoding every request costs more than serving it).
                self.mode = Mode::Passthrough;
            }
            return;
        }
        self.transcode = true;
        let mut encoded = Vec::new();
        for (name, value) in &fields {
            encode_literal(&mut encoded, name, value);
        }
        emit_block(&mut self.output, &block, &encoded);
    }
}

/// The priority fields and header block fragment of a HEADERS payload; None if the
/// padding or priority fields do not fit.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut padding = 0;
    if flags & PADDED != 0 {
        let (&pad, tail) = rest.split_first()?;
        padding = usize::from(pad);
        rest = tail;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let fields = rest.get(..5)?;
        priority = Some([fields[0], fields[1], fields[2], fields[3], fields[4]]);
        rest = &rest[5..];
    }
    let end = rest.len().checked_sub(padding)?;
    Some((priority, &rest[..end]))
}

/// The `host:port` for an `:authority` h2 would refuse but that holds a URL with one.
pub fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
    if http::uri::Authority::try_from(value).is_ok() {
        return None;
    }
    let uri = http::Uri::try_from(value).ok()?;
    let authority = uri.authority()?;
    Some(authority.as_str().as_bytes().to_vec())
}

/// An HPACK integer with an `prefix_bits`-bit prefix, `first` holding the high bits.
fn encode_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u32, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | u8::try_from(value).unwrap_or(u8::MAX));
        return;
    }
    out.push(first | u8::try_from(max).unwrap_or(u8::MAX));
    let mut rest = value - max;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).unwrap_or(0) | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).unwrap_or(0));
}

/// A literal header field without indexing, new name, no Huffman coding.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_integer(out, 0x00, 7, name.len());
    out.extend_from_slice(name);
    encode_integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// Writes `encoded` as a HEADERS frame (with the block's END_STREAM and priority) and as
/// many CONTINUATION frames as the frame size needs.
fn emit_block(out: &mut Vec<u8>, block: &Block, encoded: &[u8]) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(MAX_FRAME_PAYLOAD - priority_len);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(
        out,
        first.len() + priority_len,
        HEADERS,
        flags,
        block.stream,
    );
    if let Some(priority) = block.priority {
        out.extend_from_slice(&priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, block.stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream: u32) {
    let length = u32::try_from(length).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&length[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// An accepted connection with [`AuthorityFix`] applied to what the client sends.
#[derive(Debug)]
pub struct AuthorityFixStream<S> {
    inner: S,
    fix: AuthorityFix,
    eof: bool,
}

impl<S> AuthorityFixStream<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> AuthorityFixStream<S> {
        AuthorityFixStream {
            inner,
            fix: AuthorityFix::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFixStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.fix.is_passthrough() {
            // HTTP/1.1: no copying through the adaptor.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            let ready = this.fix.output();
            if !ready.is_empty() {
                let count = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..count]);
                this.fix.consume(count);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                        this.fix.finish();
                    } else {
                        this.fix.feed(read.filled())?;
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFixStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];

    /// HPACK literal with incremental indexing, new name, no Huffman.
    fn indexed_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        out.push(0x40);
        encode_integer(out, 0, 7, name.len());
        out.extend_from_slice(name);
        encode_integer(out, 0, 7, value.len());
        out.extend_from_slice(value);
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut fix = AuthorityFix::new();
        for piece in input.chunks(chunk) {
            fix.feed(piece).unwrap();
        }
        fix.finish();
        fix.output().to_vec()
    }

    /// What the server's HPACK decoder makes of the header blocks in `bytes`.
    fn server_view(bytes: &[u8]) -> Vec<Vec<(String, String)>> {
        let mut rest = bytes.strip_prefix(PREFACE).unwrap();
        let mut decoder = fluke_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut block = Vec::new();
        while !rest.is_empty() {
            let length =
                usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (kind, flags) = (rest[3], rest[4]);
            let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + length];
            assert!(length <= MAX_FRAME_PAYLOAD);
            if kind == HEADERS {
                block = split_headers_payload(flags, payload).unwrap().1.to_vec();
            } else if kind == CONTINUATION {
                block.extend_from_slice(payload);
            }
            if (kind == HEADERS || kind == CONTINUATION) && flags & END_HEADERS != 0 {
                let fields = decoder.decode(&block).unwrap();
                blocks.push(
                    fields
                        .into_iter()
                        .map(|(n, v)| {
                            (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                        })
                        .collect(),
                );
            }
            rest = &rest[FRAME_HEADER_LEN + length..];
        }
        blocks
    }

    fn request_block(authority: &str, path: &str) -> Vec<u8> {
        let mut block = Vec::new();
        block.push(0x83); // :method POST (static index 3)
        indexed_literal(&mut block, b":authority", authority.as_bytes());
        indexed_literal(&mut block, b":path", path.as_bytes());
        block
    }

    #[test]
    fn a_block_with_a_valid_authority_passes_through_unchanged() {
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block("127.0.0.1:2379", "/a"),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"data"));
        assert_eq!(run(&input, input.len()), input);
    }

    #[test]
    fn a_connection_whose_first_authority_is_valid_is_not_inspected_further() {
        let mut fix = AuthorityFix::new();
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block("127.0.0.1:2379", "/a"),
        ));
        fix.feed(&input).unwrap();
        let taken = fix.output().len();
        assert_eq!(taken, input.len());
        fix.consume(taken);
        assert!(fix.is_passthrough());
    }

    #[test]
    fn http1_connections_pass_through_unchanged() {
        let input = b"GET /version HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        assert_eq!(run(&input, 3), input);
        let mut fix = AuthorityFix::new();
        fix.feed(b"PRI * HTTP/1.1").unwrap();
        assert!(!fix.is_passthrough(), "output not yet taken");
        let taken = fix.output().len();
        fix.consume(taken);
        assert!(fix.is_passthrough());
    }

    #[tokio::test]
    async fn the_stream_rewrites_what_the_client_sends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block("http://h:1", "/p"),
        ));
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for piece in input.chunks(5) {
                client.write_all(piece).await.unwrap();
            }
        });
        let mut received = Vec::new();
        AuthorityFixStream::new(server)
            .read_to_end(&mut received)
            .await
            .unwrap();
        writer.await.unwrap();
        assert_eq!(server_view(&received)[0][1].1, "h:1");
    }

    #[test]
    fn a_url_authority_becomes_host_and_port_and_later_blocks_stay_consistent() {
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block("http://127.0.0.1:2379", "/a"),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"data"));
        // Second request: everything from the client's dynamic table (:path is index 62,
        // :authority 63) plus a new indexed literal.
        let mut second = vec![0x83, 0x80 | 63, 0x80 | 62];
        indexed_literal(&mut second, b"te", b"trailers");
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
        let output = run(&input, input.len());
        let blocks = server_view(&output);
        let expected_first = [
            (":method", "POST"),
            (":authority", "127.0.0.1:2379"),
            (":path", "/a"),
        ];
        let as_pairs = |block: &Vec<(String, String)>| {
            block
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            as_pairs(&blocks[0]),
            expected_first.map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            as_pairs(&blocks[1]),
            [
                (":method", "POST"),
                (":authority", "127.0.0.1:2379"),
                (":path", "/a"),
                ("te", "trailers")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert!(output.windows(4).any(|w| w == b"data"));
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_output() {
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        let block = request_block("https://host.example:443", "/etcdserverpb.KV/Put");
        let (head, tail) = block.split_at(5);
        // PADDED and PRIORITY HEADERS, then a CONTINUATION.
        let mut payload = vec![3];
        payload.extend([0, 0, 0, 0, 15]);
        payload.extend(head);
        payload.extend([0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &payload));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, tail));
        let whole = run(&input, input.len());
        assert_eq!(run(&input, 1), whole);
        assert_eq!(run(&input, 7), whole);
        let blocks = server_view(&whole);
        assert_eq!(
            blocks[0][1],
            (":authority".to_owned(), "host.example:443".to_owned())
        );
        assert_eq!(blocks[0][2].1, "/etcdserverpb.KV/Put");
    }

    #[test]
    fn a_large_rewritten_block_is_split_into_continuation_frames() {
        let mut block = request_block("http://h:1", "/p");
        let big = "x".repeat(40_000);
        indexed_literal(&mut block, b"big", big.as_bytes());
        let mut input = PREFACE.to_vec();
        let (a, b) = block.split_at(16_000);
        input.extend(frame(HEADERS, 0, 1, a));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        let output = run(&input, 1000);
        let blocks = server_view(&output);
        assert_eq!(blocks[0][1].1, "h:1");
        assert_eq!(blocks[0][3].1, big);
    }

    #[test]
    fn only_authorities_h2_refuses_are_rewritten() {
        assert_eq!(fix_authority(b"127.0.0.1:2379"), None);
        assert_eq!(fix_authority(b"localhost"), None);
        assert_eq!(
            fix_authority(b"http://127.0.0.1:2379"),
            Some(b"127.0.0.1:2379".to_vec())
        );
        assert_eq!(
            fix_authority(b"https://[::1]:2379/"),
            Some(b"[::1]:2379".to_vec())
        );
        assert_eq!(fix_authority(b"not a url"), None);
    }
}
