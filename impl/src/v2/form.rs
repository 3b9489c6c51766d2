//! The parts of Go's `net/http` that shape what the v2 handlers see: `url.ParseQuery`
//! (with its errors, which etcd returns as code 210 "Invalid POST form"),
//! `Request.ParseForm` (form body first, then the query, for PUT/POST/PATCH with a
//! form content type), the decoded request path, and `ServeMux`'s clean-path redirect.

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte.
///
/// # Errors
/// Go's `invalid URL escape "%zz"` text.
fn query_unescape(s: &str) -> Result<String, String> {
    unescape(s, true)
}

fn unescape(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    if h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        u8::from_str_radix(h, 16).ok()
                    } else {
                        None
                    }
                });
                match hex {
                    Some(b) => out.push(b),
                    None => {
                        let end = (i + 3).min(bytes.len());
                        let bad = String::from_utf8_lossy(&bytes[i..end]);
                        return Err(format!("invalid URL escape \"{bad}\""));
                    }
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `url.ParseQuery`: every well-formed pair in order, and the first error met
/// (parsing goes on after an error, as Go's does).
pub fn parse_query(query: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut pairs = Vec::new();
    let mut error = None;
    for part in query.split('&') {
        if part.contains(';') {
            error.get_or_insert_with(|| "invalid semicolon separator in query".to_owned());
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (query_unescape(k), query_unescape(v)) {
            (Ok(k), Ok(v)) => pairs.push((k, v)),
            (Err(e), _) | (_, Err(e)) => {
                error.get_or_insert(e);
            }
        }
    }
    (pairs, error)
}

/// The media type of a `Content-Type` value as Go's `mime.ParseMediaType` reads it
/// (lower-cased), or its error text.
fn media_type(content_type: &str) -> Result<String, String> {
    let (base, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let base = base.trim().to_ascii_lowercase();
    if base.is_empty() {
        return Err("mime: no media type".to_owned());
    }
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    let Some((major, minor)) = base.split_once('/') else {
        return Err("mime: expected slash after first token".to_owned());
    };
    if !is_token(major) {
        return Err("mime: expected token after slash".to_owned());
    }
    if !is_token(minor) {
        return Err("mime: unexpected content after media subtype".to_owned());
    }
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some((k, v)) if is_token(k.trim()) && !v.trim().is_empty() => {}
            _ => return Err("mime: invalid media parameter".to_owned()),
        }
    }
    Ok(base)
}

/// Go's `Request.ParseForm` for the v2 keys handler: the decoded form pairs (a form
/// body's first, then the query's) or the first error, which etcd reports as 210.
///
/// # Errors
/// The error text Go gives (bad escape, semicolon, bad media type).
pub fn parse_form(
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
    query: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut error = None;
    if matches!(method, "POST" | "PUT" | "PATCH") {
        match media_type(content_type.unwrap_or("application/octet-stream")) {
            Ok(t) if t == "application/x-www-form-urlencoded" => {
                let (body_pairs, e) = parse_query(&String::from_utf8_lossy(body));
                pairs = body_pairs;
                error = e;
            }
            Ok(_) => {}
            Err(e) => error = Some(e),
        }
    }
    let (query_pairs, e) = parse_query(query);
    pairs.extend(query_pairs);
    match error.or(e) {
        Some(e) => Err(e),
        None => Ok(pairs),
    }
}

/// The request path as Go's `URL.Path` holds it (percent-decoded; `+` stays).
pub fn decoded_path(raw: &str) -> String {
    unescape(raw, false).unwrap_or_else(|_| raw.to_owned())
}

/// Go's `ServeMux` `cleanPath`: `path.Clean`, keeping a trailing slash.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_owned();
    }
    let rooted = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    };
    let mut clean = oxetcd_spec::v2::clean_path(&rooted);
    if rooted.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Go's `url.PathEscape`-like encoding of a clean path for a `Location` header.
pub fn escape_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_reports_go_errors_and_keeps_order() {
        let (pairs, err) = parse_query("a=1&b=x+y&a=2&&c");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("a".into(), "2".into()),
                ("c".into(), String::new()),
            ]
        );
        assert_eq!(err, None);
        assert_eq!(
            parse_query("a=1;b=2").1.as_deref(),
            Some("invalid semicolon separator in query")
        );
        assert_eq!(
            parse_query("a=%zz").1.as_deref(),
            Some("invalid URL escape \"%zz\"")
        );
        assert_eq!(
            parse_query("a=%4").1.as_deref(),
            Some("invalid URL escape \"%4\"")
        );
    }

    #[test]
    fn form_body_comes_before_query_and_only_for_form_content() {
        let form = parse_form(
            "PUT",
            Some("application/x-www-form-urlencoded"),
            b"value=body",
            "value=q",
        )
        .unwrap();
        assert_eq!(form[0], ("value".into(), "body".into()));
        let form = parse_form("PUT", Some("text/plain"), b"value=body", "").unwrap();
        assert!(form.is_empty());
        let form = parse_form(
            "DELETE",
            Some("application/x-www-form-urlencoded"),
            b"recursive=true",
            "",
        )
        .unwrap();
        assert!(form.is_empty());
        assert_eq!(
            parse_form("PUT", Some(";;"), b"", "").unwrap_err(),
            "mime: no media type"
        );
    }

    #[test]
    fn clean_path_keeps_trailing_slash_like_go_servemux() {
        assert_eq!(clean_path("/v2/keys/"), "/v2/keys/");
        assert_eq!(clean_path("/v2/keys/a/../b"), "/v2/keys/b");
        assert_eq!(clean_path("/v2//keys"), "/v2/keys");
        assert_eq!(clean_path("/v2/keys/a/./"), "/v2/keys/a/");
        assert_eq!(decoded_path("/v2/keys/a%20b+c"), "/v2/keys/a b+c");
    }
}
