//! Protobuf messages to and from the gateway's JSON, as etcd's gateway maps them.
//!
//! Reading: fields by their proto name or their JSON (lowerCamel) name, the JSON name
//! winning when both are given; unknown fields ignored; `null` leaves a field unset;
//! 64- and 32-bit integers as numbers or quoted numbers; enums by name or number;
//! bytes as standard padded base64. Fields are read in declaration order, so the first
//! bad field in that order is the one reported.
//!
//! Writing: proto field names, declaration order, fields at their default value left
//! out, 64-bit integers quoted, enums by name, bytes as base64, strings HTML-safe.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _,
    Value,
};

use super::gojson::{self, Json};

/// Builds a message of type `desc` from a JSON value.
///
/// # Errors
/// The gateway's text for the first field (in declaration order) that does not fit.
pub fn from_json(desc: &MessageDescriptor, json: &Json) -> Result<DynamicMessage, String> {
    let mut message = DynamicMessage::new(desc.clone());
    let members = match json {
        Json::Null => return Ok(message),
        Json::Object(members) => members,
        other => return Err(type_error(other.kind(), "map[string]json.RawMessage")),
    };
    let by_name: BTreeMap<&str, &Json> = members
        .iter()
        .map(|(name, value)| (name.as_str(), value))
        .collect();
    for field in declared_fields(desc) {
        let value = by_name
            .get(field.json_name())
            .or_else(|| by_name.get(field.name()));
        let Some(value) = value else { continue };
        if matches!(value, Json::Null) {
            continue;
        }
        let converted = if field.is_list() {
            let Json::Array(items) = value else {
                return Err(type_error(value.kind(), "[]json.RawMessage"));
            };
            let kind = field.kind();
            Value::List(
                items
                    .iter()
                    .map(|item| single(&kind, item))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            single(&field.kind(), value)?
        };
        message.set_field(&field, converted);
    }
    Ok(message)
}

/// The fields of `desc` in declaration order.
fn declared_fields(desc: &MessageDescriptor) -> Vec<FieldDescriptor> {
    desc.descriptor_proto()
        .field
        .iter()
        .filter_map(|f| desc.get_field(u32::try_from(f.number()).ok()?))
        .collect()
}

fn type_error(kind: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {kind} into Go value of type {go_type}")
}

fn single(kind: &Kind, json: &Json) -> Result<Value, String> {
    match kind {
        Kind::Message(desc) => from_json(desc, json).map(Value::Message),
        Kind::Enum(desc) => enumeration(desc, json),
        Kind::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::Null => Ok(Value::Bool(false)),
            other => Err(type_error(other.kind(), "bool")),
        },
        Kind::String => match json {
            Json::String { value, .. } => Ok(Value::String(value.clone())),
            Json::Null => Ok(Value::String(String::new())),
            other => Err(type_error(other.kind(), "string")),
        },
        Kind::Bytes => match json {
            Json::String { value, .. } => {
                gojson::base64_decode(value.as_bytes()).map(|b| Value::Bytes(Bytes::from(b)))
            }
            Json::Null => Ok(Value::Bytes(Bytes::new())),
            other => Err(type_error(other.kind(), "[]uint8")),
        },
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            integer(json, "int64", |t| t.parse::<i64>().ok().map(Value::I64))
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            integer(json, "int32", |t| t.parse::<i32>().ok().map(Value::I32))
        }
        Kind::Uint64 | Kind::Fixed64 => {
            integer(json, "uint64", |t| t.parse::<u64>().ok().map(Value::U64))
        }
        Kind::Uint32 | Kind::Fixed32 => {
            integer(json, "uint32", |t| t.parse::<u32>().ok().map(Value::U32))
        }
        Kind::Double => integer(json, "float64", |t| t.parse::<f64>().ok().map(Value::F64)),
        Kind::Float => integer(json, "float32", |t| t.parse::<f32>().ok().map(Value::F32)),
    }
}

/// A number, or a quoted number (the raw text between the quotes is read as JSON).
fn integer(
    json: &Json,
    go_type: &str,
    parse: impl Fn(&str) -> Option<Value>,
) -> Result<Value, String> {
    let unquoted;
    let json = match json {
        Json::String { raw, .. } => {
            unquoted = gojson::parse_all(raw.as_bytes())?;
            &unquoted
        }
        other => other,
    };
    match json {
        Json::Number(text) => {
            // Integers take only integer literals (no fraction or exponent).
            let integral = !go_type.starts_with("float") && text.contains(['.', 'e', 'E']);
            match parse(text) {
                Some(value) if !integral => Ok(value),
                _ => Err(type_error(&format!("number {text}"), go_type)),
            }
        }
        Json::Null => parse("0").ok_or_else(|| type_error("null", go_type)),
        other => Err(type_error(other.kind(), go_type)),
    }
}

fn enumeration(desc: &EnumDescriptor, json: &Json) -> Result<Value, String> {
    match json {
        Json::String { raw, .. } => desc
            .get_value_by_name(raw)
            .map(|v| Value::EnumNumber(v.number()))
            .ok_or_else(|| format!("unknown value {raw:?} for enum {}", go_enum_name(desc))),
        Json::Number(text) => text
            .parse::<i32>()
            .map(Value::EnumNumber)
            .map_err(|_| type_error(&format!("number {text}"), &go_enum_name(desc))),
        Json::Null => Ok(Value::EnumNumber(0)),
        other => Err(type_error(other.kind(), &go_enum_name(desc))),
    }
}

/// The enum's name as etcd's generated code registers it, e.g.
/// `etcdserverpb.RangeRequest_SortOrder`.
fn go_enum_name(desc: &EnumDescriptor) -> String {
    let package = desc.package_name();
    let full = desc.full_name();
    let local = full
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(full);
    if package.is_empty() {
        local.replace('.', "_")
    } else {
        format!("{package}.{}", local.replace('.', "_"))
    }
}

/// Writes `message` as the gateway's JSON.
pub fn to_json(message: &DynamicMessage) -> String {
    let mut out = String::new();
    write_message(&mut out, message);
    out
}

fn write_message(out: &mut String, message: &DynamicMessage) {
    out.push('{');
    let mut first = true;
    for field in declared_fields(&message.descriptor()) {
        if !message.has_field(&field) {
            continue;
        }
        let value = message.get_field(&field);
        if let Value::List(items) = value.as_ref()
            && items.is_empty()
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        gojson::write_string(out, field.name());
        out.push(':');
        write_value(out, &field.kind(), &value);
    }
    out.push('}');
}

fn write_value(out: &mut String, kind: &Kind, value: &Value) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(n) => {
            let _ = write!(out, "{n}");
        }
        Value::U32(n) => {
            let _ = write!(out, "{n}");
        }
        Value::I64(n) => {
            let _ = write!(out, "\"{n}\"");
        }
        Value::U64(n) => {
            let _ = write!(out, "\"{n}\"");
        }
        Value::F32(n) => {
            let _ = write!(out, "{n}");
        }
        Value::F64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => gojson::write_string(out, s),
        Value::Bytes(b) => {
            out.push('"');
            out.push_str(&gojson::base64_encode(b));
            out.push('"');
        }
        Value::EnumNumber(n) => match kind {
            Kind::Enum(desc) => match desc.get_value(*n) {
                Some(v) => gojson::write_string(out, v.name()),
                None => {
                    let _ = write!(out, "{n}");
                }
            },
            _ => {
                let _ = write!(out, "{n}");
            }
        },
        Value::Message(m) => write_message(out, m),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, kind, item);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            // etcd's API has no map fields; written as an object with sorted keys.
            let sorted: BTreeMap<String, &Value> =
                entries.iter().map(|(k, v)| (format!("{k:?}"), v)).collect();
            out.push('{');
            for (i, (k, v)) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::write_string(out, k);
                out.push(':');
                write_value(out, kind, v);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use prost_reflect::DescriptorPool;

    fn desc(name: &str) -> MessageDescriptor {
        DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET)
            .unwrap()
            .get_message_by_name(name)
            .unwrap()
    }

    fn read(name: &str, text: &str) -> Result<DynamicMessage, String> {
        from_json(&desc(name), &gojson::parse_all(text.as_bytes()).unwrap())
    }

    #[test]
    fn requests_read_proto_and_camel_names_numbers_enums_and_base64() {
        let message = read(
            "etcdserverpb.RangeRequest",
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":"5","revision":7,
                "sort_order":"DESCEND","sortTarget":1,"keys_only":true,"bogus":[1]}"#,
        )
        .unwrap();
        let request: oxetcd_api::etcdserverpb::RangeRequest = message.transcode_to().unwrap();
        assert_eq!(request.key, b"foo");
        assert_eq!(request.range_end, b"fop");
        assert_eq!(request.limit, 5);
        assert_eq!(request.revision, 7);
        assert_eq!(request.sort_order, 2);
        assert_eq!(request.sort_target, 1);
        assert!(request.keys_only);
    }

    #[test]
    fn bad_fields_answer_with_the_gateway_texts() {
        let cases = [
            (
                r#"{"key":5}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (r#"{"key":"!!"}"#, "illegal base64 data at input byte 0"),
            (
                r#"{"limit":"x"}"#,
                "invalid character 'x' looking for beginning of value",
            ),
            (
                r#"{"limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"revision":"1.5"}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"limit":true}"#,
                "json: cannot unmarshal bool into Go value of type int64",
            ),
            (
                r#"{"serializable":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (
                r#"{"sort_order":"BAD"}"#,
                r#"unknown value "BAD" for enum etcdserverpb.RangeRequest_SortOrder"#,
            ),
            (
                r#"{"sort_order":"1"}"#,
                r#"unknown value "1" for enum etcdserverpb.RangeRequest_SortOrder"#,
            ),
            (
                "[1]",
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
            ),
            // Declaration order decides which bad field is reported.
            (
                r#"{"limit":99999999999999999999,"key":"eA"}"#,
                "illegal base64 data at input byte 0",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                read("etcdserverpb.RangeRequest", input).err().as_deref(),
                Some(message),
                "input {input}"
            );
        }
        let txn = [
            (
                r#"{"success":{}}"#,
                "json: cannot unmarshal object into Go value of type []json.RawMessage",
            ),
            (
                r#"{"success":[5]}"#,
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
        ];
        for (input, message) in txn {
            assert_eq!(
                read("etcdserverpb.TxnRequest", input).err().as_deref(),
                Some(message)
            );
        }
    }

    #[test]
    fn responses_are_written_as_the_gateway_writes_them() {
        use oxetcd_api::etcdserverpb as pb;
        use oxetcd_api::mvccpb;
        let response = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 0,
            }),
            kvs: vec![mvccpb::KeyValue {
                key: b"<k>".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 1,
                value: Vec::new(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let message = DynamicMessage::decode(
            desc("etcdserverpb.RangeResponse"),
            response.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(
            to_json(&message),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3"},"kvs":[{"key":"PGs+","create_revision":"2","mod_revision":"3","version":"1"}],"count":"1"}"#
        );
        let status = pb::StatusResponse {
            version: "3.4.23".into(),
            db_size: 5,
            ..Default::default()
        };
        let message = DynamicMessage::decode(
            desc("etcdserverpb.StatusResponse"),
            status.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(to_json(&message), r#"{"version":"3.4.23","dbSize":"5"}"#);
        let hash = pb::HashResponse {
            header: None,
            hash: 42,
        };
        let message = DynamicMessage::decode(
            desc("etcdserverpb.HashResponse"),
            hash.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(to_json(&message), r#"{"hash":42}"#);
        let watch = pb::WatchResponse {
            events: vec![mvccpb::Event {
                r#type: mvccpb::event::EventType::Delete as i32,
                kv: None,
                prev_kv: None,
            }],
            ..Default::default()
        };
        let message = DynamicMessage::decode(
            desc("etcdserverpb.WatchResponse"),
            watch.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(to_json(&message), r#"{"events":[{"type":"DELETE"}]}"#);
    }
}
