//! Conversions between etcd's protobuf messages (`oxetcd_api`) and `spec`'s domain types.
//! Pure field mapping: no behaviour lives here.

use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::mvccpb;
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};

/// A protobuf header with the member's identity.
#[derive(Clone, Copy, Debug)]
pub struct HeaderSource {
    /// Cluster id.
    pub cluster_id: u64,
    /// Member id.
    pub member_id: u64,
    /// Current Raft term.
    pub raft_term: u64,
}

impl HeaderSource {
    /// The header for a response at `revision`.
    pub fn at(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term,
        })
    }
}

/// `mvccpb.KeyValue` from spec.
pub fn kv_to_pb(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease.0,
    }
}

/// `mvccpb.Event` from spec; `prev_kv` only if the watcher asked for it.
pub fn event_to_pb(event: &Event, with_prev_kv: bool) -> mvccpb::Event {
    let kind = match event.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(kv_to_pb(event.kv.clone())),
        prev_kv: if with_prev_kv {
            event.prev_kv.clone().map(kv_to_pb)
        } else {
            None
        },
    }
}

/// `RangeRequest` to spec.
pub fn range_from_pb(r: pb::RangeRequest) -> RangeRequest {
    let sort_order = match pb::range_request::SortOrder::try_from(r.sort_order) {
        Ok(pb::range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(pb::range_request::SortOrder::Descend) => SortOrder::Descend,
        _ => SortOrder::None,
    };
    let sort_target = match pb::range_request::SortTarget::try_from(r.sort_target) {
        Ok(pb::range_request::SortTarget::Version) => SortTarget::Version,
        Ok(pb::range_request::SortTarget::Create) => SortTarget::Create,
        Ok(pb::range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(pb::range_request::SortTarget::Value) => SortTarget::Value,
        _ => SortTarget::Key,
    };
    RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

/// `RangeResponse` from spec.
pub fn range_to_pb(r: RangeResponse, header: HeaderSource) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header.at(r.revision),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

/// `PutRequest` to spec.
pub fn put_from_pb(r: pb::PutRequest) -> PutRequest {
    PutRequest {
        key: r.key,
        value: r.value,
        lease: LeaseId(r.lease),
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// `PutResponse` from spec.
pub fn put_to_pb(r: PutResponse, header: HeaderSource) -> pb::PutResponse {
    pb::PutResponse {
        header: header.at(r.revision),
        prev_kv: r.prev_kv.map(kv_to_pb),
    }
}

/// `DeleteRangeRequest` to spec.
pub fn delete_from_pb(r: pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

/// `DeleteRangeResponse` from spec.
pub fn delete_to_pb(r: DeleteRangeResponse, header: HeaderSource) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header.at(r.revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

fn compare_from_pb(c: pb::Compare) -> Compare {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result) {
        Ok(R::Greater) => CompareResult::Greater,
        Ok(R::Less) => CompareResult::Less,
        Ok(R::NotEqual) => CompareResult::NotEqual,
        _ => CompareResult::Equal,
    };
    // etcd reads the union member that matches `target`; a missing member compares
    // against the zero value.
    let target = match (T::try_from(c.target), c.target_union) {
        (Ok(T::Create), Some(U::CreateRevision(v))) => CompareTarget::Create(v),
        (Ok(T::Create), _) => CompareTarget::Create(0),
        (Ok(T::Mod), Some(U::ModRevision(v))) => CompareTarget::Mod(v),
        (Ok(T::Mod), _) => CompareTarget::Mod(0),
        (Ok(T::Value), Some(U::Value(v))) => CompareTarget::Value(v),
        (Ok(T::Value), _) => CompareTarget::Value(Vec::new()),
        (Ok(T::Lease), Some(U::Lease(v))) => CompareTarget::Lease(LeaseId(v)),
        (Ok(T::Lease), _) => CompareTarget::Lease(LeaseId(0)),
        (_, Some(U::Version(v))) => CompareTarget::Version(v),
        (_, _) => CompareTarget::Version(0),
    };
    Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    }
}

fn op_from_pb(op: pb::RequestOp) -> Option<RequestOp> {
    use pb::request_op::Request;
    Some(match op.request? {
        Request::RequestRange(r) => RequestOp::Range(range_from_pb(r)),
        Request::RequestPut(r) => RequestOp::Put(put_from_pb(r)),
        Request::RequestDeleteRange(r) => RequestOp::DeleteRange(delete_from_pb(r)),
        Request::RequestTxn(r) => RequestOp::Txn(txn_from_pb(r)),
    })
}

/// `TxnRequest` to spec (ops without a request are dropped, as etcd ignores them).
pub fn txn_from_pb(r: pb::TxnRequest) -> TxnRequest {
    TxnRequest {
        compare: r.compare.into_iter().map(compare_from_pb).collect(),
        success: r.success.into_iter().filter_map(op_from_pb).collect(),
        failure: r.failure.into_iter().filter_map(op_from_pb).collect(),
    }
}

/// Number of ops in a txn, nested txns included (for `--max-txn-ops`: etcd counts each
/// branch's direct ops).
pub fn txn_op_count(r: &pb::TxnRequest) -> usize {
    r.compare.len().max(r.success.len()).max(r.failure.len())
}

fn op_to_pb(op: ResponseOp) -> pb::ResponseOp {
    use pb::response_op::Response;
    // etcd fills only the revision in the headers of a txn's inner responses.
    let header = HeaderSource {
        cluster_id: 0,
        member_id: 0,
        raft_term: 0,
    };
    let response = match op {
        ResponseOp::Range(r) => Response::ResponseRange(range_to_pb(r, header)),
        ResponseOp::Put(r) => Response::ResponsePut(put_to_pb(r, header)),
        ResponseOp::DeleteRange(r) => Response::ResponseDeleteRange(delete_to_pb(r, header)),
        ResponseOp::Txn(r) => Response::ResponseTxn(txn_to_pb(r, header)),
    };
    pb::ResponseOp {
        response: Some(response),
    }
}

/// `TxnResponse` from spec.
pub fn txn_to_pb(r: TxnResponse, header: HeaderSource) -> pb::TxnResponse {
    pb::TxnResponse {
        header: header.at(r.revision),
        succeeded: r.succeeded,
        responses: r.responses.into_iter().map(op_to_pb).collect(),
    }
}
