//! The `cidr` operator: IPv4 and IPv6 networks, matched against string event values that
//! parse as an IP address. Host bits set in the pattern are masked off, as aws/event-ruler does.

use std::net::IpAddr;

/// A parsed network.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    text: String,
    network: u128,
    mask: u128,
    v4: bool,
}

/// Why a `cidr` value was refused (texts follow EventBridge's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("Malformed CIDR, one '/' required")]
    NoSlash,
    #[error("Malformed CIDR, mask bits must be an integer")]
    BadMask,
    #[error("Nonstandard IP address: {0}")]
    BadAddress(String),
}

impl Cidr {
    /// Parses `addr/bits`.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (addr, bits) = text.split_once('/').ok_or(CidrError::NoSlash)?;
        if bits.contains('/') {
            return Err(CidrError::NoSlash);
        }
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_owned()))?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|_| bits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(CidrError::BadMask)?;
        let (value, width, v4) = to_bits(ip);
        if bits > width {
            return Err(CidrError::BadMask);
        }
        let mask = prefix_mask(bits, width);
        Ok(Cidr {
            text: text.to_owned(),
            network: value & mask,
            mask,
            v4,
        })
    }

    /// The network as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `value` is an IP address inside the network.
    pub fn contains_str(&self, value: &str) -> bool {
        match value.parse::<IpAddr>() {
            Ok(ip) => self.contains(ip),
            Err(_) => false,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (value, _, v4) = to_bits(ip);
        v4 == self.v4 && value & self.mask == self.network
    }
}

fn to_bits(ip: IpAddr) -> (u128, u32, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32, true),
        IpAddr::V6(a) => (u128::from(a), 128, false),
    }
}

/// A mask of `bits` leading ones within a `width`-bit address, right-aligned in a u128.
fn prefix_mask(bits: u32, width: u32) -> u128 {
    if bits == 0 {
        return 0;
    }
    let all: u128 = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let host = width - bits;
    if host >= 128 {
        0
    } else {
        (all >> host) << host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(c.contains_str("10.0.0.255"));
        assert!(c.contains_str("10.0.0.0"));
        assert!(!c.contains_str("10.0.1.0"));
        assert!(!c.contains_str("not-an-ip"));
        assert!(!c.contains_str("::1"));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains_str("192.168.1.1"));
        let host = Cidr::parse("10.0.0.1/24").unwrap();
        assert!(host.contains_str("10.0.0.7"), "host bits are masked");
        let one = Cidr::parse("10.0.0.1/32").unwrap();
        assert!(one.contains_str("10.0.0.1") && !one.contains_str("10.0.0.2"));
    }

    #[test]
    fn v6() {
        let c = Cidr::parse("2001:db8:1234:1a00::/64").unwrap();
        assert!(c.contains_str("2001:0db8:1234:1a00:0000:0000:0000:0000"));
        assert!(c.contains_str("2001:0db8:1234:1a00:0000:0000:0000:0001"));
        assert!(!c.contains_str("2001:0db8:1234:1a01::"));
        assert!(!c.contains_str("10.0.0.1"));
        assert!(Cidr::parse("::/0").unwrap().contains_str("::1"));
    }

    #[test]
    fn invalid() {
        assert_eq!(Cidr::parse("bad-filter"), Err(CidrError::NoSlash));
        assert_eq!(Cidr::parse("10.0.0.0/x"), Err(CidrError::BadMask));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::BadMask));
        assert_eq!(Cidr::parse("10.0.0.0/+8"), Err(CidrError::BadMask));
        assert_eq!(
            Cidr::parse("10.0.0/8"),
            Err(CidrError::BadAddress("10.0.0".into()))
        );
        assert_eq!(Cidr::parse("10.0.0.0/8/8"), Err(CidrError::NoSlash));
    }
}
