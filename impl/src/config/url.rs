//! URLs as etcd accepts them in `--listen-*-urls`, `--advertise-*-urls` and
//! `--initial-cluster`: a scheme of `http`, `https`, `unix` or `unixs` and an address of the
//! form `host:port` (etcd 3.4 behaviour: `types.NewURLs` rejects anything else with the
//! messages reproduced here).

use std::fmt;

/// The transport a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TCP with TLS.
    Https,
    /// A Unix domain socket.
    Unix,
    /// A Unix domain socket with TLS.
    Unixs,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Unix => "unix",
            Scheme::Unixs => "unixs",
        }
    }

    /// Whether the scheme asks for TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Unixs)
    }
}

/// One parsed URL: scheme, host and port (path and query are not used by etcd's
/// listeners and are refused, as etcd refuses them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Url {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address; IPv6 addresses are kept without brackets.
    pub host: String,
    /// TCP port (0 asks the OS for a free one when listening).
    pub port: u16,
}

/// Why a URL was refused; the texts are etcd's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not one of the four schemes.
    #[error("URL scheme must be http, https, unix, or unixs: {0}")]
    Scheme(String),
    /// The authority is not `host:port`.
    #[error("URL address does not have the form \"host:port\": {0}")]
    Address(String),
    /// A path after the address.
    #[error("URL must not contain a path: {0}")]
    Path(String),
}

impl Url {
    /// Parses one URL as etcd does.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let (scheme_text, rest) = text
            .split_once("://")
            .ok_or_else(|| UrlError::Scheme(text.to_owned()))?;
        let scheme = match scheme_text {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "unix" => Scheme::Unix,
            "unixs" => Scheme::Unixs,
            _ => return Err(UrlError::Scheme(text.to_owned())),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(UrlError::Path(text.to_owned()));
        }
        let address_error = || UrlError::Address(text.to_owned());
        let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(address_error)?;
            (host, after.strip_prefix(':').ok_or_else(address_error)?)
        } else {
            let (host, port) = authority.rsplit_once(':').ok_or_else(address_error)?;
            if host.contains(':') {
                return Err(address_error());
            }
            (host, port)
        };
        let port = port_text.parse::<u16>().map_err(|_| address_error())?;
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
        })
    }

    /// Parses etcd's comma-separated URL list (at least one URL).
    pub fn parse_list(text: &str) -> Result<Vec<Url>, UrlError> {
        text.split(',').map(|one| Url::parse(one.trim())).collect()
    }

    /// `host:port` for binding or dialling; `localhost` becomes 127.0.0.1 so that a server
    /// started with etcd's defaults listens where etcd does.
    pub fn socket_address(&self) -> String {
        let host = if self.host == "localhost" {
            "127.0.0.1"
        } else {
            self.host.as_str()
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

/// Formats a URL list the way etcd prints and stores it (comma-separated).
pub fn join(urls: &[Url]) -> String {
    urls.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_ipv6() {
        let url = Url::parse("http://localhost:2379").unwrap();
        assert_eq!(
            url,
            Url {
                scheme: Scheme::Http,
                host: "localhost".into(),
                port: 2379
            }
        );
        assert_eq!(url.socket_address(), "127.0.0.1:2379");
        let v6 = Url::parse("https://[::1]:2380").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "https://[::1]:2380");
        assert_eq!(v6.socket_address(), "[::1]:2380");
    }

    #[test]
    fn refuses_what_etcd_refuses() {
        assert_eq!(
            Url::parse("foo").unwrap_err().to_string(),
            "URL scheme must be http, https, unix, or unixs: foo"
        );
        assert_eq!(
            Url::parse("http://localhost").unwrap_err().to_string(),
            "URL address does not have the form \"host:port\": http://localhost"
        );
        assert!(matches!(Url::parse("http://a:1/x"), Err(UrlError::Path(_))));
        assert!(matches!(Url::parse("ftp://a:1"), Err(UrlError::Scheme(_))));
        assert!(matches!(
            Url::parse("http://a:99999"),
            Err(UrlError::Address(_))
        ));
    }

    #[test]
    fn lists_are_comma_separated() {
        let urls = Url::parse_list("http://a:1, http://b:2").unwrap();
        assert_eq!(join(&urls), "http://a:1,http://b:2");
    }
}
