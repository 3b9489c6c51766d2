//! A client of the model: performs its operations one at a time, each as a request to one
//! server, re-sending to the next server when told "not leader" (a bounded number of
//! times). It never times out: an operation whose request or answer is lost stays pending,
//! which the linearizability tester treats as "may or may not have taken effect".

use std::borrow::Cow;

use stateright::actor::{Id, Out};

use super::ClusterActor;
use super::msg::Msg;
use crate::kv::{KvOp, RequestId};

/// The state of one client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// Operations completed so far (the next one is `ops[done]`).
    pub done: usize,
    /// Server the current request was last sent to (an index into the servers).
    pub server: usize,
    /// Re-sends of the current request so far.
    pub attempt: u8,
}

/// What a client does, fixed for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPlan {
    /// This client's actor index (also its `RequestId::client`).
    pub index: u8,
    /// Number of servers (requests go to servers `0..servers`).
    pub servers: usize,
    /// The operations, in order.
    pub ops: Vec<KvOp>,
    /// Maximum re-sends of one request after "not leader".
    pub retries_max: u8,
}

impl ClientPlan {
    fn request(&self, done: usize) -> RequestId {
        RequestId {
            client: self.index,
            seq: u8::try_from(done + 1).unwrap_or(u8::MAX),
        }
    }

    fn send_current(&self, state: &ClientState, o: &mut Out<ClusterActor>) {
        if let Some(&op) = self.ops.get(state.done) {
            o.send(
                Id::from(state.server),
                Msg::Request {
                    request: self.request(state.done),
                    op,
                    attempt: state.attempt,
                },
            );
        }
    }

    /// Starts the client: its first request goes to server `index % servers`.
    pub fn on_start(&self, o: &mut Out<ClusterActor>) -> ClientState {
        let state = ClientState {
            done: 0,
            server: usize::from(self.index) % self.servers.max(1),
            attempt: 0,
        };
        self.send_current(&state, o);
        state
    }

    /// Handles a server's answer; anything not about the current request is ignored.
    pub fn on_msg(&self, state: &mut Cow<ClientState>, msg: Msg, o: &mut Out<ClusterActor>) {
        let current = self.request(state.done);
        match msg {
            Msg::Response { request, .. } if request == current && state.done < self.ops.len() => {
                let next = state.to_mut();
                next.done += 1;
                next.attempt = 0;
                self.send_current(next, o);
            }
            Msg::NotLeader { request, attempt }
                if request == current
                    && attempt == state.attempt
                    && state.attempt < self.retries_max =>
            {
                let next = state.to_mut();
                next.attempt += 1;
                next.server = (next.server + 1) % self.servers.max(1);
                self.send_current(next, o);
            }
            _ => {}
        }
    }
}
