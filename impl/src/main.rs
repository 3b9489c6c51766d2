//! The `oxetcd` binary: an etcd-compatible server.

fn main() {
    eprintln!("oxetcd: not yet serving");
    std::process::exit(2);
}
