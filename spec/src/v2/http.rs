//! The request side of etcd 3.4's v2 keys API (`v2http.parseKeyRequest`): turning a
//! request's method, path and form into a store request, with etcd's exact validation
//! errors (codes 201-212, index 0). Pure: the server hands in the decoded form and its
//! clock.

use super::Request;
use super::error::{V2Error, V2ErrorCode};
use super::store::{TtlOptions, keys_path};

/// A parsed `/v2/keys` request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRequest {
    /// GET without `wait`: a read. `quorum` reads go through the log as
    /// [`Request::QGet`]; others are answered locally with [`super::Store::get`].
    Get {
        /// Store path.
        path: String,
        /// `recursive=`.
        recursive: bool,
        /// `sorted=`.
        sorted: bool,
        /// `quorum=`.
        quorum: bool,
    },
    /// GET with `wait=true`: a watch ([`super::Store::watch`]).
    Watch {
        /// Store path.
        path: String,
        /// `recursive=`.
        recursive: bool,
        /// `stream=`.
        stream: bool,
        /// `waitIndex=` (0 when absent).
        wait_index: u64,
    },
    /// PUT, POST or DELETE: proposed through the log.
    Write(Request),
}

/// A parsed request and its `noValueOnSuccess` flag (render with
/// [`super::Event::to_json_no_value`] when set).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParsedKeyRequest {
    /// What to do.
    pub request: KeyRequest,
    /// `noValueOnSuccess=true`: answer set/create/update/CAS with the action only.
    pub no_value_on_success: bool,
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`.
fn parse_go_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

struct Form<'a>(&'a [(String, String)]);

impl Form<'_> {
    /// `r.FormValue`: the first value, "" when absent.
    fn value(&self, key: &str) -> &str {
        self.first(key).unwrap_or("")
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn uint(&self, key: &str, code: V2ErrorCode, cause: &str) -> Result<u64, V2Error> {
        match self.first(key) {
            None => Ok(0),
            Some(v) => parse_go_uint(v).ok_or_else(|| V2Error::new(code, cause, 0)),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, V2Error> {
        match self.first(key) {
            None => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                V2Error::new(
                    V2ErrorCode::InvalidField,
                    format!("invalid value for \"{key}\""),
                    0,
                )
            }),
        }
    }

    /// A nullable bool (`prevExist`, `refresh`): etcd's cause has no quotes here.
    fn nullable_flag(&self, key: &str) -> Result<Option<bool>, V2Error> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => parse_go_bool(v).map(Some).ok_or_else(|| {
                V2Error::new(
                    V2ErrorCode::InvalidField,
                    format!("invalid value for {key}"),
                    0,
                )
            }),
        }
    }
}

/// etcd's `parseKeyRequest` plus the method dispatch of its keys handler.
///
/// `method` is the HTTP method (GET/HEAD/PUT/POST/DELETE; anything else is the server's
/// 405). `user_path` is the path after `/v2/keys`. `form` is Go's `r.Form`: for PUT and
/// POST the decoded body pairs first, then the query pairs; otherwise the query pairs.
/// `now_ms` is the server's clock, used to turn `ttl=` seconds into an expiration.
/// A TTL so large that the expiration overflows saturates (Go's arithmetic would wrap).
///
/// # Errors
/// etcd's request errors, all with index 0, checked in etcd's order: 203 prevIndex,
/// 203 waitIndex, 209 recursive/sorted/wait/dir/quorum/stream, 209 wait on non-GET, 201
/// empty prevValue, 209 noValueOnSuccess, 202 ttl, 209 prevExist, 209 refresh, 211 value
/// on refresh, 212 refresh without TTL.
pub fn parse_key_request(
    method: &str,
    user_path: &str,
    form: &[(String, String)],
    now_ms: u64,
) -> Result<ParsedKeyRequest, V2Error> {
    let f = Form(form);
    let path = keys_path(user_path);
    let prev_index = f.uint(
        "prevIndex",
        V2ErrorCode::IndexNotANumber,
        "invalid value for \"prevIndex\"",
    )?;
    let wait_index = f.uint(
        "waitIndex",
        V2ErrorCode::IndexNotANumber,
        "invalid value for \"waitIndex\"",
    )?;
    let recursive = f.flag("recursive")?;
    let sorted = f.flag("sorted")?;
    let wait = f.flag("wait")?;
    let dir = f.flag("dir")?;
    let quorum = f.flag("quorum")?;
    let stream = f.flag("stream")?;
    if wait && method != "GET" {
        return Err(V2Error::new(
            V2ErrorCode::InvalidField,
            "\"wait\" can only be used with GET requests",
            0,
        ));
    }
    let prev_value = f.value("prevValue").to_string();
    if f.first("prevValue").is_some() && prev_value.is_empty() {
        return Err(V2Error::new(
            V2ErrorCode::PrevValueRequired,
            "\"prevValue\" cannot be empty",
            0,
        ));
    }
    let no_value_on_success = f.flag("noValueOnSuccess")?;
    let ttl_s = if f.value("ttl").is_empty() {
        None
    } else {
        Some(parse_go_uint(f.value("ttl")).ok_or_else(|| {
            V2Error::new(V2ErrorCode::TtlNotANumber, "invalid value for \"ttl\"", 0)
        })?)
    };
    let prev_exist = f.nullable_flag("prevExist")?;
    let refresh = f.nullable_flag("refresh")?;
    if refresh == Some(true) {
        if !f.value("value").is_empty() {
            return Err(V2Error::new(
                V2ErrorCode::RefreshValue,
                "A value was provided on a refresh",
                0,
            ));
        }
        if ttl_s.is_none() {
            return Err(V2Error::new(
                V2ErrorCode::RefreshTtlRequired,
                "No TTL value set",
                0,
            ));
        }
    }
    let ttl = TtlOptions {
        expire_at_ms: ttl_s.map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
        refresh: refresh == Some(true),
    };
    let value = f.value("value").to_string();
    let request = match method {
        "GET" | "HEAD" if wait => KeyRequest::Watch {
            path,
            recursive,
            stream,
            wait_index,
        },
        "GET" | "HEAD" => KeyRequest::Get {
            path,
            recursive,
            sorted,
            quorum,
        },
        "PUT" => KeyRequest::Write(Request::Put {
            path,
            value,
            dir,
            prev_exist,
            prev_value,
            prev_index,
            ttl,
        }),
        "POST" => KeyRequest::Write(Request::Post {
            path,
            value,
            dir,
            ttl,
        }),
        _ => KeyRequest::Write(Request::Delete {
            path,
            dir,
            recursive,
            prev_value,
            prev_index,
        }),
    };
    Ok(ParsedKeyRequest {
        request,
        no_value_on_success,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn err(method: &str, pairs: &[(&str, &str)]) -> String {
        parse_key_request(method, "/w", &form(pairs), 0)
            .expect_err("invalid request")
            .to_json()
    }

    /// (method, form, etcd's body).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

    /// Each answer recorded from etcd 3.4.23 (`curl /v2/keys/w ...`).
    #[test]
    fn request_errors_match_etcd_bodies() {
        let cases: &[Case] = &[
            (
                "PUT",
                &[("value", "1"), ("wait", "true")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"\"wait\" can only be used with GET requests","index":0}"#,
            ),
            (
                "GET",
                &[("wait", "maybe")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"wait\"","index":0}"#,
            ),
            (
                "GET",
                &[("waitIndex", "x"), ("wait", "true")],
                r#"{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"waitIndex\"","index":0}"#,
            ),
            (
                "GET",
                &[("recursive", "yes")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"recursive\"","index":0}"#,
            ),
            (
                "GET",
                &[("sorted", "2")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"sorted\"","index":0}"#,
            ),
            (
                "DELETE",
                &[("dir", "x")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"dir\"","index":0}"#,
            ),
            (
                "GET",
                &[("quorum", "x")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"quorum\"","index":0}"#,
            ),
            (
                "GET",
                &[("stream", "x")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"stream\"","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "1"), ("noValueOnSuccess", "x")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"noValueOnSuccess\"","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "1"), ("ttl", "-1")],
                r#"{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}"#,
            ),
            (
                "PUT",
                &[("ttl", "abc"), ("value", "a")],
                r#"{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "1"), ("refresh", "x")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for refresh","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "1"), ("prevIndex", "")],
                r#"{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "1"), ("prevExist", "")],
                r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for prevExist","index":0}"#,
            ),
            (
                "PUT",
                &[("value", "3"), ("prevIndex", "0"), ("prevValue", "")],
                r#"{"errorCode":201,"message":"PrevValue is Required in POST form","cause":"\"prevValue\" cannot be empty","index":0}"#,
            ),
            (
                "PUT",
                &[("ttl", "50"), ("refresh", "true"), ("value", "z")],
                r#"{"errorCode":211,"message":"Value provided on refresh","cause":"A value was provided on a refresh","index":0}"#,
            ),
            (
                "PUT",
                &[("refresh", "true")],
                r#"{"errorCode":212,"message":"A TTL must be provided on refresh","cause":"No TTL value set","index":0}"#,
            ),
        ];
        for (method, pairs, want) in cases {
            assert_eq!(err(method, pairs), *want, "{method} {pairs:?}");
        }
    }

    /// etcd 3.4.23 accepted `ttl=` (no TTL), `refresh=true` with `value=` and `ttl=5`,
    /// `prevExist=T` (update) and `dir=1`.
    #[test]
    fn accepted_forms_map_to_store_requests() {
        let p = |m: &str, pairs: &[(&str, &str)]| {
            parse_key_request(m, "/w", &form(pairs), 1_000)
                .expect("valid")
                .request
        };
        let KeyRequest::Write(Request::Put { ttl, .. }) = p("PUT", &[("value", "1"), ("ttl", "")])
        else {
            panic!("a put");
        };
        assert_eq!(ttl, TtlOptions::PERMANENT);
        let KeyRequest::Write(Request::Put { ttl, .. }) =
            p("PUT", &[("value", ""), ("refresh", "true"), ("ttl", "5")])
        else {
            panic!("a put");
        };
        assert_eq!(
            ttl,
            TtlOptions {
                expire_at_ms: Some(6_000),
                refresh: true
            }
        );
        let KeyRequest::Write(Request::Put {
            prev_exist,
            dir,
            path,
            ..
        }) = p("PUT", &[("value", "1"), ("prevExist", "T"), ("dir", "1")])
        else {
            panic!("a put");
        };
        assert_eq!((prev_exist, dir, path.as_str()), (Some(true), true, "/1/w"));
        assert!(matches!(
            p(
                "GET",
                &[("wait", "true"), ("waitIndex", "7"), ("recursive", "1")]
            ),
            KeyRequest::Watch {
                wait_index: 7,
                recursive: true,
                stream: false,
                ..
            }
        ));
        assert!(matches!(
            p("HEAD", &[]),
            KeyRequest::Get { quorum: false, .. }
        ));
        let parsed = parse_key_request("PUT", "/w", &form(&[("noValueOnSuccess", "true")]), 0)
            .expect("valid");
        assert!(parsed.no_value_on_success);
    }
}
