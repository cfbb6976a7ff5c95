//! A site's configured downlink shared by everyone at the site.
//!
//! A commune's room PC and two officials' laptops behind one 3G modem each have their
//! own bandwidth estimate, and each estimate alone would let the SFU fill the modem three
//! times over. The site's link profile (`down_kbps`, set by the admin) caps the sum: each
//! participant at the site gets an equal share as a ceiling on its own estimate. Pure.

use std::collections::HashMap;
use std::hash::Hash;

/// Per participant with a site, the ceiling (bit/s) its share of the site's link allows.
/// `members`: each participant and its site's key and downlink in kbit/s.
pub fn site_shares<'a, P: Copy + Eq + Hash>(
    members: impl Iterator<Item = (P, &'a (String, u32))> + Clone,
) -> HashMap<P, u32> {
    let mut at_site: HashMap<&str, u32> = HashMap::new();
    for (_, (site, _)) in members.clone() {
        *at_site.entry(site.as_str()).or_default() += 1;
    }
    members
        .map(|(p, (site, kbps))| {
            let n = at_site.get(site.as_str()).copied().unwrap_or(1).max(1);
            (p, kbps.saturating_mul(1000) / n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_at_one_commune_share_its_link_and_other_sites_are_apart() {
        let xa = ("xa-1".to_string(), 384);
        let huyen = ("huyen".to_string(), 8000);
        let members = [(1u32, &xa), (2, &xa), (3, &xa), (4, &huyen)];
        let s = site_shares(members.iter().map(|(p, s)| (*p, *s)));
        assert_eq!(s[&1], 128_000);
        assert_eq!(s[&3], 128_000);
        assert_eq!(s[&4], 8_000_000);
    }
}
