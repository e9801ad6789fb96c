//! Outbound HTTP to URLs that other people choose (an identity provider's `jwks_uri`, a
//! client's metadata document): the address policy that keeps such fetches off private,
//! link-local and loopback networks (SSRF), a DNS resolver that applies it to every address
//! a name resolves to (the connection goes to the address that was checked, so a DNS
//! rebinding cannot switch it), and a body reader that stops at a size cap. It knows
//! nothing of JWKS, providers or clients.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses outbound requests may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Loopback targets are allowed only when keygate itself listens on loopback
    /// (development and tests); a server reachable from elsewhere never fetches from its
    /// own host.
    pub allow_loopback: bool,
}

impl AddressPolicy {
    /// The policy of a server bound to `bind` (`server.bind`: `ip:port` or `host:port`).
    pub fn for_bind(bind: &str) -> Self {
        let allow_loopback = match bind.parse::<SocketAddr>() {
            Ok(addr) => addr.ip().is_loopback(),
            Err(_) => bind
                .rsplit_once(':')
                .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
        };
        Self { allow_loopback }
    }

    /// Whether a connection to `ip` is allowed: public unicast addresses only, plus
    /// loopback when [`Self::allow_loopback`]. IPv4 embedded in IPv6 (mapped, compatible,
    /// NAT64, 6to4) is judged by its IPv4 address, and never gets the loopback exception.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => public_v4(v4) || (self.allow_loopback && v4.is_loopback()),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => public_v4(v4),
                None => public_v6(v6) || (self.allow_loopback && v6.is_loopback()),
            },
        }
    }

    /// Checks a URL before any request: `https` (or `http` to a loopback host where
    /// loopback is allowed), a host, and, when the host is an IP literal, an allowed one.
    /// Names are checked when they are resolved, at every fetch ([`GuardedResolver`]).
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        let loopback_name = |d: &str| {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        };
        let (is_loopback, literal) = match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Domain(d)) => (loopback_name(d), None),
            Some(url::Host::Ipv4(ip)) => (ip.is_loopback(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.is_loopback(), Some(IpAddr::V6(ip))),
        };
        if let Some(IpAddr::V6(v6)) = literal
            && embedded_v4(v6).is_some()
        {
            return Err("write an IPv4 address as such, not embedded in IPv6".into());
        }
        if let Some(ip) = literal
            && !self.allows(ip)
        {
            return Err(format!(
                "{ip} is not a public address (private, link-local, loopback and other special addresses are refused)"
            ));
        }
        if is_loopback && !self.allow_loopback {
            return Err("loopback hosts are refused".into());
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" if is_loopback => Ok(()),
            _ => Err("the URL must be https (http only on a loopback address)".into()),
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network", incl. unspecified
        || a == 10                              // private
        || a == 127                             // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254)               // link-local
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 168)               // private
        || (a == 198 && (18..20).contains(&b))  // benchmarking 198.18/15
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00            // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80            // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0            // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00            // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8)   // documentation
        || (s[0] == 0x2001 && s[1] == 0)        // Teredo 2001::/32
        // Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's
        // prefix length, so the whole /48 is refused.
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1))
}

/// The IPv4 address carried by an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Resolves names like the system does, then refuses the name when any address it
/// resolves to is not allowed; the connection uses only the addresses returned here.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(bad) = addrs.iter().find(|a| !policy.allows(a.ip())) {
                return Err(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client for URLs chosen by others: no redirects, no proxy (the resolver must
/// see the real target), every resolved address checked against `policy`.
pub fn client(policy: AddressPolicy, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .build()
}

/// `GET url` with `client` after checking the URL against `policy` (IP literals never
/// reach the resolver), reading at most `cap` bytes of a successful response: a larger
/// body, announced or streamed, is dropped unread past the cap.
pub async fn get_capped(
    client: &reqwest::Client,
    policy: AddressPolicy,
    url: &str,
    accept: &str,
    cap: usize,
) -> Result<Vec<u8>, String> {
    get_capped_response(client, policy, url, accept, cap)
        .await
        .map(|response| response.body)
}

/// A response read by [`get_capped_response`].
#[derive(Debug)]
pub struct CappedResponse {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// [`get_capped`], with the response's status and headers (for callers that honour
/// `Cache-Control` or need one exact status).
pub async fn get_capped_response(
    client: &reqwest::Client,
    policy: AddressPolicy,
    url: &str,
    accept: &str,
    cap: usize,
) -> Result<CappedResponse, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    policy.check_url(&parsed)?;
    let mut response = client
        .get(parsed)
        .header("accept", accept)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let too_large = || format!("the response is larger than {cap} bytes");
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(CappedResponse {
        status: response.status(),
        headers: response.headers().clone(),
        body,
    })
}

/// An error with its causes (reqwest's own message hides the resolver's reason).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };
    const LOOPBACK_SERVER: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_reachable() {
        for refused in [
            "0.0.0.0",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:a9fe:a9fe::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!SERVER.allows(ip(refused)), "{refused}");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.2.1",
            "193.0.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(SERVER.allows(ip(allowed)), "{allowed}");
        }
    }

    #[test]
    fn loopback_is_reachable_only_from_a_server_on_loopback() {
        assert!(!SERVER.allows(ip("127.0.0.1")));
        assert!(!SERVER.allows(ip("::1")));
        assert!(LOOPBACK_SERVER.allows(ip("127.0.0.1")));
        assert!(LOOPBACK_SERVER.allows(ip("::1")));
        // Never through an IPv4-mapped form, nor anything else private.
        for refused in ["::ffff:127.0.0.1", "10.0.0.1", "169.254.169.254", "fe80::1"] {
            assert!(!LOOPBACK_SERVER.allows(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn the_policy_follows_the_bind_address() {
        for (bind, loopback) in [
            ("127.0.0.1:8080", true),
            ("127.0.0.1:0", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
            ("10.0.0.5:8080", false),
            ("192.168.1.2:443", false),
            ("keygate.internal:8080", false),
        ] {
            assert_eq!(
                AddressPolicy::for_bind(bind).allow_loopback,
                loopback,
                "{bind}"
            );
        }
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        for ok in ["https://idp.example/jwks", "https://1.1.1.1/jwks"] {
            assert!(SERVER.check_url(&url(ok)).is_ok(), "{ok}");
            assert!(LOOPBACK_SERVER.check_url(&url(ok)).is_ok(), "{ok}");
        }
        for ok in [
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/jwks",
        ] {
            assert!(LOOPBACK_SERVER.check_url(&url(ok)).is_ok(), "{ok}");
            assert!(SERVER.check_url(&url(ok)).is_err(), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/jwks",
            "https://192.168.0.1/jwks",
            "https://[fd00::1]/jwks",
            "https://[fe80::1]/jwks",
            "http://[::ffff:127.0.0.1]/jwks",
            "https://[::ffff:127.0.0.1]/jwks",
            "https://[::ffff:a9fe:a9fe]/jwks",
            "https://0.0.0.0/jwks",
            "ftp://idp.example/jwks",
            "file:///etc/passwd",
        ] {
            assert!(SERVER.check_url(&url(bad)).is_err(), "{bad}");
            assert!(LOOPBACK_SERVER.check_url(&url(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_refused_before_connecting() {
        // `localhost` resolves (from /etc/hosts, no traffic) to loopback.
        let name = |s: &str| s.parse::<Name>().unwrap();
        let exposed = GuardedResolver { policy: SERVER };
        let err = exposed.resolve(name("localhost")).await.err().unwrap();
        assert!(err.to_string().contains("not a public address"), "{err}");
        let on_loopback = GuardedResolver {
            policy: LOOPBACK_SERVER,
        };
        let addrs: Vec<_> = on_loopback
            .resolve(name("localhost"))
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
