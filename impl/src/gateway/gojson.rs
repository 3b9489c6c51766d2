//! JSON reading and writing with the exact behaviour and error texts of the JSON layer
//! etcd's gateway uses (a stream decoder that reads one value at a time and ignores what
//! follows it; whole-input parsing for quoted numbers; standard padded base64 for bytes;
//! HTML-safe string escaping). Clients see these texts in `{"error": ...}` bodies.

use std::fmt::Write as _;

/// A parsed JSON value. Strings keep their raw text between the quotes (the gateway
/// reads quoted numbers and enum names from the raw text, without unescaping).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string: its unescaped value and the raw text between the quotes.
    String {
        /// The unescaped value.
        value: String,
        /// The raw text between the quotes.
        raw: String,
    },
    /// An array.
    Array(Vec<Json>),
    /// An object, members in input order (a repeated name: the last one counts).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The name the gateway's error texts use for this kind of value.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String { .. } => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// What the stream decoder found at the start of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A complete value and the number of bytes it used (with leading white space).
    Value(Json, usize),
    /// Only white space, and the input has ended.
    End,
    /// The value is incomplete; more input may complete it.
    NeedMore,
}

/// Nesting deeper than this is refused (as the reference decoder does, with a lower
/// bound here to keep the recursion small).
const MAX_DEPTH: usize = 1000;

enum Stop {
    Syntax(String),
    /// The input ended inside a value.
    End,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

/// Reads the first value of `buf` as a stream decoder does: leading white space is
/// skipped and whatever follows the value is left unread. `eof` says whether more input
/// can arrive.
///
/// # Errors
/// The decoder's message: a syntax error, or `unexpected EOF` for a truncated value.
pub fn decode_next(buf: &[u8], eof: bool) -> Result<Next, String> {
    let mut parser = Parser {
        s: buf,
        i: 0,
        depth: 0,
    };
    parser.skip_ws();
    if parser.i == buf.len() {
        return Ok(if eof { Next::End } else { Next::NeedMore });
    }
    match parser.value() {
        Ok(value) => {
            // A number at the very end of the buffer may continue in the next read.
            if matches!(value, Json::Number(_)) && parser.i == buf.len() && !eof {
                return Ok(Next::NeedMore);
            }
            Ok(Next::Value(value, parser.i))
        }
        Err(Stop::Syntax(message)) => Err(message),
        Err(Stop::End) if eof => Err("unexpected EOF".to_owned()),
        Err(Stop::End) => Ok(Next::NeedMore),
    }
}

/// Parses the whole of `input` as one value.
///
/// # Errors
/// The parser's message, e.g. `unexpected end of JSON input` or `invalid character 'x'
/// after top-level value`.
pub fn parse_all(input: &[u8]) -> Result<Json, String> {
    let mut parser = Parser {
        s: input,
        i: 0,
        depth: 0,
    };
    parser.skip_ws();
    let value = match parser.value() {
        Ok(value) => value,
        Err(Stop::Syntax(message)) => return Err(message),
        Err(Stop::End) => return Err("unexpected end of JSON input".to_owned()),
    };
    parser.skip_ws();
    match parser.peek() {
        None => Ok(value),
        Some(c) => Err(format!(
            "invalid character {} after top-level value",
            quote_char(c)
        )),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next_byte(&mut self) -> Result<u8, Stop> {
        let c = self.peek().ok_or(Stop::End)?;
        self.i += 1;
        Ok(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Json, Stop> {
        self.skip_ws();
        let c = self.peek().ok_or(Stop::End)?;
        match c {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'"' => {
                let (value, raw) = self.string()?;
                Ok(Json::String { value, raw })
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal("true").map(|()| Json::Bool(true)),
            b'f' => self.literal("false").map(|()| Json::Bool(false)),
            b'n' => self.literal("null").map(|()| Json::Null),
            _ => Err(syntax(c, "looking for beginning of value")),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<Json, Stop>) -> Result<Json, Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Syntax("exceeded max depth".to_owned()));
        }
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn object(&mut self) -> Result<Json, Stop> {
        self.i += 1;
        let mut members = Vec::new();
        self.skip_ws();
        match self.peek().ok_or(Stop::End)? {
            b'}' => {
                self.i += 1;
                return Ok(Json::Object(members));
            }
            b'"' => {}
            c => return Err(syntax(c, "looking for beginning of object key string")),
        }
        loop {
            let (key, _) = self.string()?;
            self.skip_ws();
            match self.next_byte()? {
                b':' => {}
                c => return Err(syntax(c, "after object key")),
            }
            let value = self.value()?;
            members.push((key, value));
            self.skip_ws();
            match self.next_byte()? {
                b',' => {
                    self.skip_ws();
                    match self.peek().ok_or(Stop::End)? {
                        b'"' => {}
                        c => return Err(syntax(c, "looking for beginning of object key string")),
                    }
                }
                b'}' => return Ok(Json::Object(members)),
                c => return Err(syntax(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<Json, Stop> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek().ok_or(Stop::End)? == b']' {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.next_byte()? {
                b',' => {}
                b']' => return Ok(Json::Array(items)),
                c => return Err(syntax(c, "after array element")),
            }
        }
    }

    /// A string starting at the opening quote: (unescaped value, raw text).
    fn string(&mut self) -> Result<(String, String), Stop> {
        self.i += 1;
        let start = self.i;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.next_byte()?;
            match c {
                b'"' => {
                    let raw = String::from_utf8_lossy(&self.s[start..self.i - 1]).into_owned();
                    return Ok((String::from_utf8_lossy(&out).into_owned(), raw));
                }
                b'\\' => {
                    let e = self.next_byte()?;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let ch = if (0xd800..0xdc00).contains(&unit) {
                                self.low_surrogate(unit)
                            } else {
                                char::from_u32(u32::from(unit))
                            };
                            let mut utf8 = [0u8; 4];
                            out.extend_from_slice(
                                ch.unwrap_or('\u{fffd}').encode_utf8(&mut utf8).as_bytes(),
                            );
                        }
                        _ => return Err(syntax(e, "in string escape code")),
                    }
                }
                0..0x20 => return Err(syntax(c, "in string literal")),
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, Stop> {
        let mut unit = 0u16;
        for _ in 0..4 {
            let c = self.next_byte()?;
            let digit = (c as char)
                .to_digit(16)
                .ok_or_else(|| syntax(c, "in \\u hexadecimal character escape"))?;
            unit = unit * 16 + u16::try_from(digit).unwrap_or(0);
        }
        Ok(unit)
    }

    /// After a high surrogate: a following `\uDC00..DFFF` escape completes the pair
    /// (a lone surrogate becomes U+FFFD and the next escape is read on its own).
    fn low_surrogate(&mut self, high: u16) -> Option<char> {
        let rest = &self.s[self.i..];
        if rest.len() >= 6 && rest[0] == b'\\' && rest[1] == b'u' {
            let text = std::str::from_utf8(&rest[2..6]).ok()?;
            let low = u16::from_str_radix(text, 16).ok()?;
            if (0xdc00..0xe000).contains(&low) {
                self.i += 6;
                let code = 0x10000 + ((u32::from(high) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                return char::from_u32(code);
            }
        }
        None
    }

    fn number(&mut self) -> Result<Json, Stop> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
            let c = self.peek().ok_or(Stop::End)?;
            if !c.is_ascii_digit() {
                return Err(syntax(c, "in numeric literal"));
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let c = self.peek().ok_or(Stop::End)?;
            if !c.is_ascii_digit() {
                return Err(syntax(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let c = self.peek().ok_or(Stop::End)?;
            if !c.is_ascii_digit() {
                return Err(syntax(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(Json::Number(
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
        ))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), Stop> {
        self.i += 1;
        for expected in word.bytes().skip(1) {
            let c = self.next_byte()?;
            if c != expected {
                return Err(Stop::Syntax(format!(
                    "invalid character {} in literal {word} (expecting {})",
                    quote_char(c),
                    quote_char(expected)
                )));
            }
        }
        Ok(())
    }
}

fn syntax(c: u8, context: &str) -> Stop {
    Stop::Syntax(format!("invalid character {} {context}", quote_char(c)))
}

/// A byte as the reference decoder quotes it in error texts: `'x'`, `'\''`, `'"'`,
/// `'\n'`, `'\x01'`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        0x07 => "'\\a'".to_owned(),
        0x08 => "'\\b'".to_owned(),
        0x0c => "'\\f'".to_owned(),
        b'\n' => "'\\n'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        0x0b => "'\\v'".to_owned(),
        b'\\' => "'\\\\'".to_owned(),
        0..0x20 | 0x7f => format!("'\\x{c:02x}'"),
        0x80..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        _ => format!("'{}'", char::from(c)),
    }
}

/// Decodes standard, padded base64 as the reference decoder does (line breaks are
/// skipped).
///
/// # Errors
/// `illegal base64 data at input byte N`, with the reference decoder's N.
pub fn base64_decode(src: &[u8]) -> Result<Vec<u8>, String> {
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(illegal(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = base64_value(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(illegal(si - 1));
            }
            // Padding: only after two or three symbols, and it ends the input.
            match j {
                0 | 1 => return Err(illegal(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(illegal(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(illegal(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                return Err(illegal(si));
            }
            len = j;
            break;
        }
        let bits = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..len]);
    }
    Ok(out)
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Standard, padded base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let bits = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                let index = usize::try_from((bits >> (18 - 6 * k)) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Appends `s` as a JSON string the way the gateway writes strings: `<`, `>`, `&`,
/// U+2028 and U+2029 escaped, control characters as `\u00XX` (except `\n`, `\r`, `\t`).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(input: &str) -> Result<Next, String> {
        decode_next(input.as_bytes(), true)
    }

    #[test]
    fn syntax_errors_carry_the_reference_texts() {
        let cases = [
            (
                "not json",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 2}",
                "invalid character '2' after object key:value pair",
            ),
            (
                "{1}",
                "invalid character '1' looking for beginning of object key string",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            ("-x", "invalid character 'x' in numeric literal"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            (
                "1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12x4\"",
                "invalid character 'x' in \\u hexadecimal character escape",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
            ("{\"key\":\"Zm9v\"", "unexpected EOF"),
        ];
        for (input, message) in cases {
            assert_eq!(first(input), Err(message.to_owned()), "input {input:?}");
        }
    }

    #[test]
    fn the_stream_decoder_reads_one_value_and_leaves_the_rest() {
        let Ok(Next::Value(value, used)) = first(" {\"a\":[1,true,null]}xx") else {
            panic!("expected a value");
        };
        assert_eq!(used, 20);
        assert_eq!(
            value,
            Json::Object(vec![(
                "a".to_owned(),
                Json::Array(vec![Json::Number("1".into()), Json::Bool(true), Json::Null])
            )])
        );
        assert_eq!(first("  \n"), Ok(Next::End));
        assert_eq!(decode_next(b"{\"a\":", false), Ok(Next::NeedMore));
        assert_eq!(decode_next(b"12", false), Ok(Next::NeedMore));
        assert!(matches!(decode_next(b"12", true), Ok(Next::Value(_, 2))));
    }

    #[test]
    fn strings_unescape_and_keep_their_raw_text() {
        let Ok(Json::String { value, raw }) = parse_all(br#""a\u00e9\ud83d\ude00\n""#) else {
            panic!("expected a string");
        };
        assert_eq!(value, "a\u{e9}\u{1f600}\n");
        assert_eq!(raw, r"a\u00e9\ud83d\ude00\n");
    }

    #[test]
    fn whole_input_parsing_refuses_trailing_data_and_empty_input() {
        assert_eq!(
            parse_all(b"5x"),
            Err("invalid character 'x' after top-level value".to_owned())
        );
        assert_eq!(
            parse_all(b""),
            Err("unexpected end of JSON input".to_owned())
        );
        assert_eq!(parse_all(b" 5 "), Ok(Json::Number("5".into())));
    }

    #[test]
    fn base64_matches_the_reference_decoder() {
        assert_eq!(base64_decode(b"Zm9v"), Ok(b"foo".to_vec()));
        assert_eq!(base64_decode(b"Zm8="), Ok(b"fo".to_vec()));
        assert_eq!(base64_decode(b"Zg=="), Ok(b"f".to_vec()));
        assert_eq!(base64_decode(b"Zm\n9v"), Ok(b"foo".to_vec()));
        assert_eq!(base64_decode(b""), Ok(Vec::new()));
        let err = |n: usize| Err(format!("illegal base64 data at input byte {n}"));
        assert_eq!(base64_decode(b"!!"), err(0));
        assert_eq!(base64_decode(b"eA"), err(0));
        assert_eq!(base64_decode(b"Zm9vYg"), err(4));
        assert_eq!(base64_decode(b"Zg="), err(3));
        assert_eq!(base64_decode(b"Zg==Zg=="), err(4));
        assert_eq!(base64_decode(b"Z==="), err(1));
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\xfe"] {
            assert_eq!(
                base64_decode(base64_encode(bytes).as_bytes()),
                Ok(bytes.to_vec())
            );
        }
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }

    #[test]
    fn strings_are_written_html_safe() {
        let mut out = String::new();
        write_string(&mut out, "<a&b>\"\\\n\u{1}\u{2028}é");
        assert_eq!(out, r#""\u003ca\u0026b\u003e\"\\\n\u0001\u2028é""#);
    }
}
