//! Fresh ids: a prefix, then 22 base62 characters — 9 of milliseconds since the epoch, 13 of
//! randomness (74 bits): unguessable and URL-safe, and k-sortable, so a new row's id lands on
//! the right edge of every index keyed by it instead of on a random page.
//!
//! The last character is one of `0`–`6`: read least significant first, as ids made before
//! they were time-ordered were (128 random bits), the 22 digits then still fit a `u128`,
//! which the Mercado Pago dialect renders its ids from.

use rand::Rng;

/// In ASCII order, so that ids of one length sort as their numbers do.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_DIGITS: usize = 9;
const RANDOM_DIGITS: usize = 13;

pub fn new_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    new_id_at(prefix, millis, rand::rng().random())
}

fn new_id_at(prefix: &str, millis: u128, random: u128) -> String {
    let mut id = String::with_capacity(prefix.len() + TIME_DIGITS + RANDOM_DIGITS);
    id.push_str(prefix);
    push_base62(&mut id, millis, TIME_DIGITS);
    push_base62(&mut id, random >> 8, RANDOM_DIGITS - 1);
    id.push(BASE62[(random % 7) as usize] as char);
    id
}

/// The `digits` lowest base62 digits of `value`, most significant first.
fn push_base62(id: &mut String, mut value: u128, digits: usize) {
    let mut buffer = [0u8; 22];
    for slot in buffer[..digits].iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    id.extend(buffer[..digits].iter().map(|&digit| digit as char));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_keep_their_length() {
        let earlier = new_id_at("ord_", 1_700_000_000_000, u128::MAX);
        let later = new_id_at("ord_", 1_700_000_000_001, 0);
        assert!(earlier < later);
        assert_eq!(earlier.len(), 4 + 22);
        assert_eq!(later.len(), 4 + 22);
        // Nine digits hold milliseconds for the next ~400,000 years.
        let far = new_id_at("ord_", 62u128.pow(9) - 1, 0);
        assert!(far.starts_with("ord_zzzzzzzzz"));
    }

    #[test]
    fn read_least_significant_first_ids_fit_a_u128() {
        let id = new_id_at("ord_", 62u128.pow(9) - 1, u128::MAX);
        let mut value: Option<u128> = Some(0);
        for byte in id["ord_".len()..].bytes().rev() {
            let digit = BASE62.iter().position(|&b| b == byte).unwrap() as u128;
            value = value.and_then(|v| v.checked_mul(62)?.checked_add(digit));
        }
        assert!(value.is_some());
    }

    #[test]
    fn fresh_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("x_")).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
