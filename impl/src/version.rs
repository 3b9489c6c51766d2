//! The versions oxetcd reports.
//!
//! oxetcd implements the behaviour of one etcd release; clients (Kubernetes among them)
//! gate features on the version a server reports in `/version`, Maintenance `Status` and
//! `--version`. That release is this documented setting: change [`ETCD_VERSION`] and
//! [`ETCD_CLUSTER_VERSION`] together when the implemented behaviour moves to another
//! etcd release.

/// The etcd server version whose behaviour oxetcd implements.
pub const ETCD_VERSION: &str = "3.4.23";

/// The cluster version reported next to it (etcd reports major.minor.0).
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// The etcd capability level logged at start-up ("enabled capabilities for version 3.4").
pub const ETCD_CAPABILITY_VERSION: &str = "3.4";

/// oxetcd's own version.
pub const OXETCD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The lines `oxetcd --version` prints: etcd's four, then oxetcd's own.
pub fn version_text() -> String {
    format!(
        "etcd Version: {ETCD_VERSION}\nGit SHA: {git}\nGo Version: {go}\nGo OS/Arch: {os}/{arch}\n\
         oxetcd Version: {OXETCD_VERSION}\n",
        git = option_env!("OXETCD_GIT_SHA")
            .unwrap_or("Not provided (oxetcd is not built from etcd's sources)"),
        go = "none (oxetcd is written in Rust)",
        os = std::env::consts::OS,
        arch = go_arch(),
    )
}

/// The architecture under Go's name, as etcd prints it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_has_etcds_lines_then_ours() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "etcd Version: 3.4.23");
        assert!(lines[1].starts_with("Git SHA: "));
        assert!(lines[2].starts_with("Go Version: "));
        assert!(lines[3].starts_with("Go OS/Arch: linux/") || !cfg!(target_os = "linux"));
        assert_eq!(lines[4], format!("oxetcd Version: {OXETCD_VERSION}"));
    }
}
