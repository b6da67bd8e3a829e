//! Network patterns in the config (`option forwardfor except NET`): an address and a
//! prefix length. ACLs and conditions are the rule language's (`crate::rules`).

use std::net::IpAddr;

/// `10.0.0.0/8`, `192.168.1.1`, `::1`, `2001:db8::/32`.
pub fn parse_net(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("invalid address {text:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                // HAProxy also accepts a dotted mask: 255.255.0.0.
                match (ip, l.parse::<std::net::Ipv4Addr>()) {
                    (IpAddr::V4(_), Ok(mask))
                        if u32::from(mask).leading_ones() == u32::from(mask).count_ones() =>
                    {
                        u32::from(mask).count_ones() as u8
                    }
                    _ => return Err(format!("invalid network {text:?}")),
                }
            }
        },
    };
    Ok((ip, len))
}

/// Whether `ip` is inside `net`. IPv4-mapped IPv6 clients match IPv4 networks.
pub fn net_contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = parse_net("10.1.0.0/16").unwrap();
        assert!(net_contains(net, "10.1.2.3".parse().unwrap()));
        assert!(!net_contains(net, "10.2.0.1".parse().unwrap()));
        assert!(net_contains(net, "::ffff:10.1.9.9".parse().unwrap()));
        assert_eq!(parse_net("10.0.0.0/255.0.0.0").unwrap().1, 8);
        assert!(net_contains(
            parse_net("0.0.0.0/0").unwrap(),
            "1.2.3.4".parse().unwrap()
        ));
        assert!(net_contains(
            parse_net("2001:db8::/32").unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/255.0.255.0"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }
}
