//! Generic gRPC calls: protobuf-JSON <-> bytes through prost-reflect, and a raw-bytes
//! tonic codec so any etcd method can be called by name.

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use bytes::{Buf, BufMut};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, SerializeOptions,
};
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Passes already-encoded protobuf messages through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

/// Decoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

/// The etcd descriptor pool.
pub fn pool() -> Result<DescriptorPool> {
    Ok(DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET)?)
}

/// Resolves `KV/Range` (package `etcdserverpb` implied) or `v3lockpb.Lock/Lock`.
pub fn method(pool: &DescriptorPool, name: &str) -> Result<(MethodDescriptor, String)> {
    let (svc, m) = name
        .split_once('/')
        .ok_or_else(|| anyhow!("method {name} is not Service/Method"))?;
    let full = if svc.contains('.') {
        svc.to_owned()
    } else {
        format!("etcdserverpb.{svc}")
    };
    let service = pool
        .get_service_by_name(&full)
        .ok_or_else(|| anyhow!("unknown service {full}"))?;
    let md = service
        .methods()
        .find(|x| x.name() == m)
        .ok_or_else(|| anyhow!("unknown method {m} in {full}"))?;
    Ok((md, format!("/{full}/{m}")))
}

fn map_bytes(desc: &MessageDescriptor, v: &mut Value, to_text: bool) -> Result<()> {
    let Some(obj) = v.as_object_mut() else {
        return Ok(());
    };
    for (k, val) in obj.iter_mut() {
        let Some(field) = desc
            .get_field_by_name(k)
            .or_else(|| desc.get_field_by_json_name(k))
        else {
            continue;
        };
        match field.kind() {
            Kind::Bytes => match val {
                Value::Array(a) => {
                    for x in a {
                        *x = convert_bytes(x, to_text)?;
                    }
                }
                other => *other = convert_bytes(other, to_text)?,
            },
            Kind::Message(m) => match val {
                Value::Array(a) => {
                    for x in a {
                        map_bytes(&m, x, to_text)?;
                    }
                }
                other => map_bytes(&m, other, to_text)?,
            },
            _ => {}
        }
    }
    Ok(())
}

fn convert_bytes(v: &Value, to_text: bool) -> Result<Value> {
    let Some(s) = v.as_str() else {
        return Ok(v.clone());
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    if to_text {
        let raw = b64.decode(s).context("bytes field is not base64")?;
        Ok(Value::String(match String::from_utf8(raw.clone()) {
            Ok(t) if !t.chars().any(char::is_control) && !t.starts_with("base64:") => t,
            _ => format!("base64:{}", b64.encode(&raw)),
        }))
    } else if let Some(data) = s.strip_prefix("base64:") {
        Ok(Value::String(data.to_owned()))
    } else {
        Ok(Value::String(b64.encode(s.as_bytes())))
    }
}

/// Encodes a (substituted) protobuf-JSON request with text bytes fields.
pub fn encode(desc: &MessageDescriptor, v: &Value) -> Result<Vec<u8>> {
    let mut v = v.clone();
    map_bytes(desc, &mut v, false)?;
    let msg = DynamicMessage::deserialize(desc.clone(), v)
        .with_context(|| format!("request is not a valid {}", desc.full_name()))?;
    Ok(msg.encode_to_vec())
}

/// Decodes a message into protobuf-JSON (proto field names, 64-bit integers as numbers,
/// default values omitted, bytes as text).
pub fn decode(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Value> {
    let msg = DynamicMessage::decode(desc.clone(), bytes)?;
    let opts = SerializeOptions::new()
        .stringify_64_bit_integers(false)
        .use_proto_field_name(true)
        .skip_default_fields(true);
    let mut v = msg.serialize_with_options(serde_json::value::Serializer, &opts)?;
    map_bytes(desc, &mut v, true)?;
    Ok(v)
}
