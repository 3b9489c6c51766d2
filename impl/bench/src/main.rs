//! `oxetcd-bench`: load generator and comparison harness for etcd-compatible endpoints.

fn main() {
    eprintln!("oxetcd-bench: no workloads yet");
    std::process::exit(2);
}
