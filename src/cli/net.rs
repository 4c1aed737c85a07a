//! The network settings shared by `run`, `serve` and `connector test`: what the operator allows the
//! egress path beyond the public internet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use super::UsageError;
use crate::egress::EgressConfig;

#[derive(Clone, Debug, Default, Args)]
pub struct NetArgs {
    /// Allow connections to a private or loopback range (CIDR), which the SSRF guard refuses otherwise.
    #[arg(long = "allow-private", value_name = "CIDR")]
    pub allow_private: Vec<String>,
    /// Trust an extra CA certificate (PEM file) besides the public roots.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// Resolve HOST to ADDR, like curl's --resolve (HOST:ADDR, repeatable).
    #[arg(long = "resolve", value_name = "HOST:ADDR")]
    pub resolve: Vec<String>,
}

impl NetArgs {
    /// Builds the egress settings, naming the flag of any value that is wrong.
    pub fn egress_config(&self) -> Result<EgressConfig, UsageError> {
        let (allow_private, ca_cert, resolve) = (&self.allow_private, &self.ca_cert, &self.resolve);
        let mut cfg = EgressConfig::default();
        for cidr in allow_private {
            let net = cidr
                .parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    UsageError(format!(
                        "--allow-private {cidr:?}: not a CIDR such as 127.0.0.1/32"
                    ))
                })?;
            cfg.allow_private.push(net);
        }
        for path in ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| UsageError(format!("--ca-cert {}: {e}", path.display())))?;
            cfg.extra_ca_pem.push(pem);
        }
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for entry in resolve {
            let (host, addr) = entry
                .rsplit_once(':')
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| UsageError(format!("--resolve {entry:?}: expected HOST:ADDR")))?;
            let addr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| {
                    UsageError(format!(
                        "--resolve {entry:?}: {addr:?} is not an IP address"
                    ))
                })?;
            map.entry(host.trim_end_matches('.').to_ascii_lowercase())
                .or_default()
                .push(addr);
        }
        cfg.resolve = map;
        Ok(cfg)
    }
}
