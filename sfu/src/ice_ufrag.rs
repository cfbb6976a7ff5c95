//! Which session a STUN message from a new address names: the local part of its USERNAME
//! (RFC 8445 7.2.2: `<our ufrag>:<their ufrag>` in the checks a client sends us).
//!
//! The room core admits a new remote address only through a STUN check naming a known
//! session, looked up by that ufrag; anything else from an unknown address is dropped
//! without asking any session (a scan of every session per junk packet would let one
//! sender make the core do O(peers) work per datagram). str0m still verifies the
//! check's integrity before the address is remembered.

/// The STUN magic cookie (RFC 5389 6).
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER: usize = 20;
const USERNAME: u16 = 0x0006;

/// Our ufrag from a STUN message's USERNAME attribute; `None` for anything that is not
/// a well-formed STUN message with one.
pub(crate) fn local_ufrag(d: &[u8]) -> Option<&str> {
    // The two top bits of a STUN message are zero; the length excludes the header and is
    // a multiple of 4.
    if d.len() < HEADER || d[0] & 0xc0 != 0 || d[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let body = d.get(HEADER..HEADER + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let n = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + n)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next().filter(|u| !u.is_empty());
        }
        // Values are padded to 4 bytes.
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stun(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, v) in attrs {
            body.extend(kind.to_be_bytes());
            body.extend((v.len() as u16).to_be_bytes());
            body.extend(*v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut d = vec![0x00, 0x01];
        d.extend((body.len() as u16).to_be_bytes());
        d.extend(MAGIC);
        d.extend([7u8; 12]);
        d.extend(body);
        d
    }

    #[test]
    fn the_local_ufrag_of_a_check() {
        let d = stun(&[(0x0024, &[0, 0, 0, 1]), (USERNAME, b"sfuU:cli1")]);
        assert_eq!(local_ufrag(&d), Some("sfuU"));
        assert_eq!(local_ufrag(&stun(&[(0x0024, &[1, 2, 3, 4])])), None);
        assert_eq!(local_ufrag(&stun(&[(USERNAME, b":x")])), None);
        // Not STUN: RTP, DTLS, a short or truncated message.
        let mut rtp = d.clone();
        rtp[0] = 0x80;
        assert_eq!(local_ufrag(&rtp), None);
        assert_eq!(local_ufrag(&d[..19]), None);
        assert_eq!(local_ufrag(&d[..d.len() - 2]), None);
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_safely(d in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = local_ufrag(&d);
        }
    }
}
