//! Mercado Pago-style ids as a bijective rendering of Authcap ids, so no extra storage is needed.
//!
//! An Authcap id is a prefix plus 22 base62 digits (least significant first) of a `u128`
//! ([`crate::wire::new_id`]). Mercado Pago ids look like `ORD01J49MMW3SSBK5PSV3DFR32959`: a
//! prefix plus 26 Crockford base32 digits. The same `u128` rendered in Crockford base32 (most
//! significant first) gives `ORD…` for an order, `PAY…` (same digits) for its one payment and
//! `REF…` for a refund; parsing reverses it.

use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE62_DIGITS: usize = 22;
const CROCKFORD_DIGITS: usize = 26;

pub const ORDER: &str = "ORD";
pub const PAYMENT: &str = "PAY";
pub const REFUND: &str = "REF";

fn base62_decode(digits: &str) -> Option<u128> {
    if digits.len() != BASE62_DIGITS {
        return None;
    }
    let mut value: u128 = 0;
    for byte in digits.bytes().rev() {
        let digit = BASE62.iter().position(|&b| b == byte)? as u128;
        value = value.checked_mul(62)?.checked_add(digit)?;
    }
    Some(value)
}

fn base62_encode(mut value: u128) -> String {
    let mut text = String::with_capacity(BASE62_DIGITS);
    for _ in 0..BASE62_DIGITS {
        text.push(BASE62[(value % 62) as usize] as char);
        value /= 62;
    }
    text
}

fn crockford_encode(value: u128) -> String {
    (0..CROCKFORD_DIGITS)
        .map(|i| {
            let shift = 5 * (CROCKFORD_DIGITS - 1 - i);
            CROCKFORD[((value >> shift) & 31) as usize] as char
        })
        .collect()
}

fn crockford_decode(digits: &str) -> Option<u128> {
    if digits.len() != CROCKFORD_DIGITS {
        return None;
    }
    let mut value: u128 = 0;
    for (i, byte) in digits.bytes().enumerate() {
        let digit = CROCKFORD.iter().position(|&b| b == byte)? as u128;
        // 26 digits carry 130 bits: the first may only use the low 3.
        if i == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit;
    }
    Some(value)
}

/// The Mercado Pago rendering of an Authcap id (`ord_…` → `ORD…`). An id of another shape
/// (never produced by Authcap) is rendered through a hash so that it still looks right.
pub fn render(mp_prefix: &str, authcap_id: &str) -> String {
    let value = authcap_id
        .split_once('_')
        .and_then(|(_, digits)| base62_decode(digits))
        .unwrap_or_else(|| hashed(authcap_id));
    format!("{mp_prefix}{}", crockford_encode(value))
}

/// The Authcap id behind a Mercado Pago id, or `None` when it is not well formed.
/// Case does not matter (webhook notifications carry the id lowercased, as Mercado Pago's
/// documentation signs it).
pub fn parse(mp_prefix: &str, authcap_prefix: &str, mp_id: &str) -> Option<String> {
    let upper = mp_id.to_ascii_uppercase();
    let digits = upper.strip_prefix(mp_prefix)?;
    let value = crockford_decode(digits)?;
    Some(format!("{authcap_prefix}{}", base62_encode(value)))
}

/// The 26 digits shared by an order id and its payment id.
pub fn digits(mp_id: &str) -> &str {
    &mp_id[mp_id.len().saturating_sub(CROCKFORD_DIGITS)..]
}

/// A stable 26-character reference derived from an id (the payment's `reference_id`).
pub fn reference_id(authcap_id: &str) -> String {
    crockford_encode(hashed(&format!("reference:{authcap_id}")))
}

fn hashed(text: &str) -> u128 {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for _ in 0..1000 {
            let id = crate::wire::new_id("ord_");
            let mp = render(ORDER, &id);
            assert_eq!(mp.len(), 29);
            assert_eq!(parse(ORDER, "ord_", &mp).as_deref(), Some(id.as_str()));
        }
        assert_eq!(
            parse(ORDER, "ord_", &format!("ORD{}", "7".repeat(26))).map(|s| s.len()),
            Some(26)
        );
        assert_eq!(
            parse(ORDER, "ord_", &format!("ORD8{}", "0".repeat(25))),
            None
        );
        assert_eq!(parse(ORDER, "ord_", "ORD01J49MMW3SSBK5PSV3DFR3295"), None);
        assert_eq!(parse(ORDER, "ord_", "ORD01J49MMW3SSBK5PSV3DFR3295I"), None);
        assert_eq!(parse(ORDER, "ord_", "PAY01J49MMW3SSBK5PSV3DFR32959"), None);
        assert!(parse(ORDER, "ord_", "ORD01J49MMW3SSBK5PSV3DFR32959").is_some());
    }
}
