//! `etcd-conformance`: record, replay and Jepsen-style checks against any etcd endpoint.

fn main() {
    eprintln!("etcd-conformance: no commands yet");
    std::process::exit(2);
}
