//! Fresh ids: a prefix and 128 random bits in base62, unguessable and URL-safe.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn new_id(prefix: &str) -> String {
    let mut value: u128 = rand::rng().random();
    let mut id = String::with_capacity(prefix.len() + 22);
    id.push_str(prefix);
    for _ in 0..22 {
        id.push(BASE62[(value % 62) as usize] as char);
        value /= 62;
    }
    id
}
