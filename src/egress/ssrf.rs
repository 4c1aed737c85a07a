//! The SSRF guard: every address a host resolves to must be public, unless the operator allowed its CIDR.
//!
//! It is a `reqwest` DNS resolver, so the addresses it checked are the very addresses `reqwest` connects
//! to: there is no second lookup an attacker's DNS could answer differently (rebinding). The URL keeps the
//! name, so SNI, certificate checks and `Host` still use it.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is not public, or `None` when it is. Embedded IPv4 forms (mapped, compatible, NAT64,
/// 6to4) are judged by the IPv4 address they carry, since that is where the packets end up.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let n = u32::from(ip);
    let in_net = |base: [u8; 4], len: u32| {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        n & mask == u32::from(Ipv4Addr::from(base)) & mask
    };
    // Checked before the ranges that contain them, so the reason is the most telling one.
    if [
        [169, 254, 169, 254], // AWS, GCP, Azure, OpenStack, ...
        [169, 254, 170, 2],   // AWS ECS task metadata
        [100, 100, 100, 200], // Alibaba Cloud
        [168, 63, 129, 16],   // Azure wireserver, public-looking but host-internal
    ]
    .contains(&o)
    {
        return Some("cloud metadata");
    }
    if o == [255, 255, 255, 255] {
        return Some("broadcast");
    }
    let table: &[([u8; 4], u32, &'static str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (0.0.0.0/8)"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF special-purpose"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    table
        .iter()
        .find(|(base, len, _)| in_net(*base, *len))
        .map(|(_, _, reason)| *reason)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (SIIT translated)
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last32),
        // ::a.b.c.d (deprecated "compatible"); :: and ::1 are handled as themselves
        [0, 0, 0, 0, 0, 0, _, _] if u128::from(ip) > 1 => Some(last32),
        // 64:ff9b::/96, the well-known NAT64 prefix
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last32),
        // 2002:V4ADDR::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if s[0] == 0xfd00 && s[1] == 0x0ec2 && ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
    {
        return Some("cloud metadata");
    }
    if let Some(v4) = embedded_v4(ip) {
        return v4_reason(v4);
    }
    let prefix = |base: Ipv6Addr, len: u32| {
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        u128::from(ip) & mask == u128::from(base) & mask
    };
    let table: &[(Ipv6Addr, u32, &'static str)] = &[
        (
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
            48,
            "local-use NAT64",
        ),
        (
            Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
            64,
            "discard-only",
        ),
        (
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
            32,
            "Teredo tunnel",
        ),
        (
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
            48,
            "benchmarking",
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            "documentation",
        ),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            "documentation",
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            "unique local (ULA)",
        ),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
        // Everything outside 2000::/3 is unallocated or special; nothing public lives there.
    ];
    if let Some((_, _, reason)) = table.iter().find(|(b, l, _)| prefix(*b, *l)) {
        return Some(reason);
    }
    if !prefix(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("reserved");
    }
    None
}

/// `Some(reason)` when the guard refuses `ip`: it is not public and no allowed CIDR covers it (or the
/// IPv4 address it embeds).
pub fn refusal(ip: IpAddr, allow: &[IpNet]) -> Option<&'static str> {
    let reason = non_public_reason(ip)?;
    let allowed = |a: IpAddr| allow.iter().any(|net| net.contains(&a));
    let embedded = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    if allowed(ip) || embedded.is_some_and(allowed) {
        None
    } else {
        Some(reason)
    }
}

/// The resolver refused a host. The egress path finds it in the error's source chain and reports the
/// request as blocked rather than as a network error.
#[derive(Debug)]
pub struct ForbiddenAddress {
    pub host: String,
    pub addr: IpAddr,
    pub reason: &'static str,
}

impl fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to a non-public address ({}: {})",
            self.host, self.reason, self.addr
        )
    }
}

impl std::error::Error for ForbiddenAddress {}

#[derive(Debug)]
struct NoAddresses(String);

impl fmt::Display for NoAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves to no address", self.0)
    }
}

impl std::error::Error for NoAddresses {}

/// The `reqwest` resolver: `--resolve`-style overrides first, then the system resolver; then the guard.
pub(crate) struct GuardedResolver {
    allow: Arc<Vec<IpNet>>,
    /// Lowercase names without a trailing dot.
    overrides: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl GuardedResolver {
    pub(crate) fn new(allow: Vec<IpNet>, overrides: &HashMap<String, Vec<IpAddr>>) -> Self {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (normalise_name(k), v.clone()))
            .collect();
        GuardedResolver {
            allow: Arc::new(allow),
            overrides: Arc::new(overrides),
        }
    }
}

fn normalise_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(s) => s.to_string(),
        None => lower,
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = normalise_name(name.as_str());
        let allow = self.allow.clone();
        let overridden = self.overrides.get(&host).cloned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match overridden {
                // Port 0: reqwest puts the URL's port in.
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            if addrs.is_empty() {
                return Err(Box::new(NoAddresses(host)) as _);
            }
            // All or nothing: refusing only the bad addresses would still let a hostile name steer
            // which of our connection attempts succeed.
            for a in &addrs {
                if let Some(reason) = refusal(a.ip(), &allow) {
                    return Err(Box::new(ForbiddenAddress {
                        host,
                        addr: a.ip(),
                        reason,
                    }) as _);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        non_public_reason(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reason(s), None, "{s}");
        }
    }

    #[test]
    fn non_public_v4() {
        for (s, want) in [
            ("0.0.0.0", "unspecified (0.0.0.0/8)"),
            ("0.1.2.3", "unspecified (0.0.0.0/8)"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.1.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.170.2", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("168.63.129.16", "cloud metadata"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.170", "IETF special-purpose"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_eq!(reason(s), Some(want), "{s}");
        }
    }

    #[test]
    fn non_public_v6() {
        for (s, want) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("fc00::1", "unique local (ULA)"),
            ("fd12:3456::1", "unique local (ULA)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "Teredo tunnel"),
            ("2001:2::1", "benchmarking"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::a00:1", "local-use NAT64"),
            ("4000::1", "reserved"),
        ] {
            assert_eq!(reason(s), Some(want), "{s}");
        }
    }

    #[test]
    fn embedded_v4_forms_are_judged_by_their_v4() {
        for (s, want) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:7f00:1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:0:192.168.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::0.0.0.2", "unspecified (0.0.0.0/8)"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
            ("2002:a9fe:a9fe::", "cloud metadata"),
        ] {
            assert_eq!(reason(s), Some(want), "{s}");
        }
    }

    #[test]
    fn allow_list() {
        let allow: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let r = |s: &str| refusal(s.parse().unwrap(), &allow);
        assert_eq!(r("127.0.0.1"), None);
        assert_eq!(r("::ffff:127.0.0.1"), None);
        assert_eq!(r("127.0.0.2"), Some("loopback"));
        assert_eq!(r("fd00::5"), None);
        assert_eq!(r("fc00::5"), Some("unique local (ULA)"));
        assert_eq!(r("8.8.8.8"), None);
        assert_eq!(refusal("127.0.0.1".parse().unwrap(), &[]), Some("loopback"));
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn resolver_applies_overrides_and_guard() {
        let mut map = HashMap::new();
        map.insert("API.test.".to_string(), vec!["127.0.0.1".parse().unwrap()]);
        map.insert(
            "mixed.test".to_string(),
            vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()],
        );
        map.insert("public.test".to_string(), vec!["8.8.8.8".parse().unwrap()]);
        let allowed = GuardedResolver::new(vec!["127.0.0.1/32".parse().unwrap()], &map);
        let strict = GuardedResolver::new(vec![], &map);
        run(async {
            let addrs: Vec<_> = allowed
                .resolve("api.test".parse().unwrap())
                .await
                .unwrap()
                .collect();
            assert_eq!(addrs, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
            let addrs: Vec<_> = strict
                .resolve("public.test".parse().unwrap())
                .await
                .unwrap()
                .collect();
            assert_eq!(addrs.len(), 1);

            let err = match strict.resolve("api.test".parse().unwrap()).await {
                Ok(_) => panic!("loopback must be refused"),
                Err(e) => e,
            };
            let fa = err.downcast_ref::<ForbiddenAddress>().expect("typed error");
            assert_eq!(fa.reason, "loopback");
            // One bad address spoils the whole answer.
            assert!(allowed
                .resolve("mixed.test".parse().unwrap())
                .await
                .is_err());
            // Real DNS goes through the same guard.
            assert!(strict.resolve("localhost".parse().unwrap()).await.is_err());
        });
    }
}
