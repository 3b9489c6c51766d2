//! Alarms through the applier: a raised NOSPACE alarm refuses what adds data and lets
//! deletes, reads and compactions through, clearing it restores writes, and raised
//! alarms survive a reopen of the backend.

use oxetcd_spec::alarm::{AlarmAction, AlarmError, AlarmMember, AlarmRequest, AlarmType};
use oxetcd_spec::apply::{AppConfig, AppState, ApplyError, Command, Proposal, Response};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{DeleteRangeRequest, MemBackend, PutRequest, RequestOp, TxnRequest};

struct T {
    state: AppState<MemBackend>,
    index: u64,
}

impl T {
    fn run(&mut self, command: Command) -> Result<Response, ApplyError> {
        self.index += 1;
        let proposal = Proposal {
            request_id: self.index,
            auth: None,
            command,
        };
        self.state
            .apply(self.index, &proposal, 0)
            .expect("backend")
            .expect("not applied before")
            .result
    }
}

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    }
}

fn alarm(action: AlarmAction, alarm: AlarmType) -> Command {
    Command::Alarm(AlarmRequest {
        action,
        member_id: 42,
        alarm,
    })
}

const NOSPACE: AlarmMember = AlarmMember {
    member_id: 42,
    alarm: AlarmType::NoSpace,
};

#[test]
fn nospace_alarm_caps_writes_until_cleared_and_survives_reopen() {
    let mut t = T {
        state: AppState::new(MemBackend::default(), AppConfig::default()),
        index: 0,
    };
    t.run(Command::Put(put("a"))).expect("put before the alarm");
    assert_eq!(
        t.run(alarm(AlarmAction::Activate, AlarmType::NoSpace)),
        Ok(Response::Alarm(vec![NOSPACE]))
    );
    let space = Err(ApplyError::Alarm(AlarmError::NoSpace));
    assert_eq!(t.run(Command::Put(put("b"))), space);
    assert_eq!(
        t.run(Command::LeaseGrant {
            id: LeaseId(5),
            ttl_secs: 10
        }),
        space
    );
    let txn = TxnRequest {
        success: vec![RequestOp::Put(put("c"))],
        ..TxnRequest::default()
    };
    assert_eq!(t.run(Command::Txn(txn.clone())), space);
    assert!(
        t.run(Command::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..DeleteRangeRequest::default()
        }))
        .is_ok()
    );
    assert_eq!(
        t.run(alarm(AlarmAction::Get, AlarmType::None)),
        Ok(Response::Alarm(vec![NOSPACE]))
    );

    // Raised alarms are durable: a reopened state still refuses.
    let reopened =
        AppState::open(t.state.store().backend().clone(), AppConfig::default()).expect("reopen");
    assert_eq!(reopened.alarms().get(AlarmType::None), vec![NOSPACE]);
    let mut t = T {
        index: reopened.applied_index(),
        state: reopened,
    };
    assert_eq!(t.run(Command::Put(put("b"))), space);

    assert_eq!(
        t.run(alarm(AlarmAction::Deactivate, AlarmType::NoSpace)),
        Ok(Response::Alarm(vec![NOSPACE]))
    );
    assert_eq!(
        t.run(alarm(AlarmAction::Deactivate, AlarmType::NoSpace)),
        Ok(Response::Alarm(vec![]))
    );
    assert!(t.run(Command::Txn(txn)).is_ok());
    let reopened =
        AppState::open(t.state.store().backend().clone(), AppConfig::default()).expect("reopen");
    assert!(reopened.alarms().get(AlarmType::None).is_empty());
}
