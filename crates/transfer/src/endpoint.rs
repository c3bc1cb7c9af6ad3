//! Which network endpoint a tool config talks to, and whether a shared service (the operator)
//! may contact it on a user's behalf.
//!
//! Whoever can create a BackupRepo chooses the endpoint the controller's probe connects to. Left
//! open, that lets them reach what only the controller's pod can reach: the cloud's instance
//! metadata service (credentials of the node) and the cluster's API server. Two layers refuse
//! those:
//!
//! - [`check`], before a probe: the endpoint's host by address, after resolving names, so
//!   `metadata.internal`-style names are caught too, with a message that names the endpoint;
//! - [`guard_process`], once at the controller's start: every HTTP connection this process
//!   makes to a storage (S3, Azure Blob, IAM; probes, usage, keys) resolves its host through a
//!   resolver that refuses those addresses, and the address it connects to is the one that
//!   resolver approved (no second lookup, so DNS rebinding is closed). That is the host actually
//!   contacted: with virtual-host addressing `<bucket>.<endpoint>`, not the endpoint. A literal
//!   address in an endpoint is checked when the client is built. Redirects are never followed.
//!
//! FTP connects through its own client: under the guard its host is resolved once, checked and
//! pinned to the approved address ([`pinned_host`]; FTPS keeps the name for its certificate).
//! Limit: the data connections of passive mode go where the server's PASV answer says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use crate::config::Backend;

/// `host` and `port` the backend connects to; `None` for local directories and for the
/// provider's default endpoint (a public service address).
pub fn host_port(backend: &Backend) -> Option<(String, u16)> {
    crate::service::of(backend).host_port()
}

/// `scheme://host:port/path`, `host:port`, `[v6]:port` or `host` → host and port (https's
/// 443 when none is given and the scheme is not http).
pub(crate) fn parse(endpoint: &str) -> Option<(String, u16)> {
    let e = endpoint.trim();
    if e.is_empty() {
        return None;
    }
    let (scheme, rest) = match e.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("https".to_string(), e),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme == "http" { 80 } else { 443 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            Some((h.to_string(), p.parse().unwrap_or(default_port)))
        }
        _ => Some((authority.to_string(), default_port)),
    }
}

/// Why an address may not be contacted on a user's behalf, if it may not.
pub fn refused_reason(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254) => {
            Some("the cloud instance metadata service")
        }
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (169.254.0.0/16)"),
        // Alibaba Cloud's metadata service (oss is one of our providers).
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(100, 100, 100, 200) => {
            Some("the cloud instance metadata service")
        }
        IpAddr::V6(v6) if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("the cloud instance metadata service")
        }
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            Some("a link-local address (fe80::/10)")
        }
        _ => None,
    }
}

/// The addresses this process refuses to connect to for a storage: metadata and link-local
/// ones always, and those of the API server.
#[derive(Debug, Clone, Default)]
struct Guard {
    api_server: Vec<IpAddr>,
}

static GUARD: OnceLock<Guard> = OnceLock::new();

/// Guard every storage connection of this process from now on (see the module doc):
/// `refused_hosts` (the API server) are resolved once here. The first call wins.
pub async fn guard_process(refused_hosts: &[String]) {
    let _ = GUARD.set(Guard::new(refused_hosts).await);
}

impl Guard {
    /// The guard refusing `refused_hosts` (the API server), resolved now.
    async fn new(refused_hosts: &[String]) -> Guard {
        let mut api_server = Vec::new();
        for h in refused_hosts {
            api_server.extend(resolve(h, 443).await);
        }
        Guard { api_server }
    }

    fn refused(&self, host: &str, ip: IpAddr) -> Option<String> {
        let why = refused_reason(ip).or_else(|| {
            self.api_server
                .contains(&ip)
                .then_some("the cluster's API server")
        })?;
        Some(endpoint_refused(host, ip, why))
    }
}

/// A literal address the guarded process may not contact, as an error message.
pub fn refused_literal(host: &str) -> Option<String> {
    let ip = host.trim_matches(['[', ']']).parse::<IpAddr>().ok()?;
    GUARD.get()?.refused(host, ip)
}

/// Under the process's guard, a host that a client outside reqwest connects to (FTP): resolved
/// once and checked; with `pin`, the approved address to connect to instead of the name, so a
/// second lookup cannot answer differently (FTPS keeps the name: its certificate names it).
/// Without a guard, `host` as it is.
pub(crate) fn pinned_host(host: &str, port: u16, pin: bool) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let Some(guard) = GUARD.get() else {
        return Ok(host.to_string());
    };
    let bare = host.trim_matches(['[', ']']);
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {bare}: {e}"))?
        .collect();
    if let Some(why) = addrs.iter().find_map(|a| guard.refused(bare, a.ip())) {
        return Err(why);
    }
    Ok(match (pin, addrs.first().map(SocketAddr::ip)) {
        (true, Some(IpAddr::V6(v6))) => format!("[{v6}]"),
        (true, Some(v4)) => v4.to_string(),
        _ => host.to_string(),
    })
}

/// The resolver of guarded HTTP clients: the system's lookup, refusing any answer that holds a
/// refused address (all of them, not only the first: the client may try each).
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(guard) = GUARD.get() {
                if let Some(why) = addrs.iter().find_map(|a| guard.refused(&host, a.ip())) {
                    return Err(format!(
                        "{why}; the controller does not contact metadata, link-local or API-server addresses for a repository"
                    )
                    .into());
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `builder` with the process's guard, when there is one.
pub(crate) fn guarded(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    match GUARD.get() {
        Some(_) => builder.dns_resolver(Arc::new(GuardedResolver)),
        None => builder,
    }
}

/// Resolve `host:port` (a literal address resolves to itself). A name that does not resolve
/// gives no addresses: the probe reports that failure itself.
async fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `Err(why)` when the backend's endpoint is, or resolves to, a link-local or metadata
/// address, or one of the `refused_hosts` (the API server), by name or by address.
pub async fn check(backend: &Backend, refused_hosts: &[String]) -> Result<(), String> {
    match host_port(backend) {
        Some((host, port)) => check_host(&host, port, refused_hosts).await,
        None => Ok(()),
    }
}

/// As [`check`], for the host of an endpoint written as [`parse`] reads it (the endpoints a
/// Mount repository's CSI driver is given).
pub async fn check_endpoint(endpoint: &str, refused_hosts: &[String]) -> Result<(), String> {
    match parse(endpoint) {
        Some((host, port)) => check_host(&host, port, refused_hosts).await,
        None => Ok(()),
    }
}

async fn check_host(host: &str, port: u16, refused_hosts: &[String]) -> Result<(), String> {
    // The same rule as the connections' guard, and the API server by name too.
    let guard = Guard::new(refused_hosts).await;
    let addrs = resolve(host, port).await;
    if let Some(why) = addrs.iter().find_map(|ip| guard.refused(host, *ip)) {
        return Err(why);
    }
    if refused_hosts.iter().any(|r| r.eq_ignore_ascii_case(host)) {
        return Err(format!(
            "endpoint host {host} is the cluster's API server, which is never a storage endpoint"
        ));
    }
    Ok(())
}

fn endpoint_refused(host: &str, ip: IpAddr, why: &str) -> String {
    if host == ip.to_string() {
        format!("endpoint {host} is {why}, which is never a storage endpoint")
    } else {
        format!("endpoint host {host} resolves to {ip}, {why}, which is never a storage endpoint")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::ToolConfig;

    fn backend(text: &str) -> Backend {
        ToolConfig::parse(text).unwrap().backend
    }

    #[test]
    fn endpoints_are_parsed_with_their_default_ports() {
        assert_eq!(
            parse("http://10.0.0.1:9000"),
            Some(("10.0.0.1".into(), 9000))
        );
        assert_eq!(
            parse("https://s3.example/x"),
            Some(("s3.example".into(), 443))
        );
        assert_eq!(parse("http://s3.example"), Some(("s3.example".into(), 80)));
        assert_eq!(parse("minio:9000"), Some(("minio".into(), 9000)));
        assert_eq!(
            parse("[fd00:ec2::254]:80"),
            Some(("fd00:ec2::254".into(), 80))
        );
        assert_eq!(parse("http://[::1]"), Some(("::1".into(), 80)));
        assert_eq!(parse(""), None);
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.1.2",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused_reason(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "8.8.8.8", "fd00::1", "::1"] {
            assert!(refused_reason(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn probe_targets_are_checked_by_address_and_by_name() {
        let s3 = |ep: &str| {
            backend(&format!(
                "[storage]\ntype = s3\nprovider = Minio\naccess_key_id = a\nsecret_access_key = b\nendpoint = {ep}\nroot = bucket\n"
            ))
        };
        let err = check(&s3("http://169.254.169.254/latest"), &[])
            .await
            .unwrap_err();
        assert!(err.contains("metadata service"), "{err}");
        // `localhost` resolves to a loopback address: allowed (the tests' own servers).
        check(&s3("http://localhost:9000"), &[]).await.unwrap();
        // The API server, by address and by name.
        let api = vec!["10.96.0.1".to_string()];
        let err = check(&s3("https://10.96.0.1"), &api).await.unwrap_err();
        assert!(err.contains("API server"), "{err}");
        let api = vec!["localhost".to_string()];
        let err = check(&s3("http://127.0.0.1:9000"), &api).await.unwrap_err();
        assert!(
            err.contains("resolves to 127.0.0.1") || err.contains("API server"),
            "{err}"
        );
        let ftp = backend("[storage]\ntype = ftp\nhost = 169.254.10.10\nport = 21\nuser = u\npass.need_obscure = p\n");
        assert!(check(&ftp, &[]).await.is_err());
        let local = backend("[storage]\ntype = local\nroot = /tmp\n");
        check(&local, &api).await.unwrap();
    }
}
