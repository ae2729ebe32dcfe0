//! Money in integer minor units, and exact conversion from and to decimal text.
//!
//! Amounts never pass through a float: decimal text (a JSON number's literal or a string) is
//! parsed digit by digit against the currency's ISO 4217 exponent.

use std::fmt;

/// The largest amount Authcap accepts, in minor units: 2^53 − 1, so every amount survives a
/// JavaScript client's `Number` exactly.
pub const AMOUNT_MAX: i64 = 9_007_199_254_740_991;

/// A non-negative amount of money in minor units of some currency (cents for EUR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn new(minor_units: i64) -> Result<Amount, AmountError> {
        if minor_units < 0 {
            Err(AmountError::Negative)
        } else if minor_units > AMOUNT_MAX {
            Err(AmountError::TooLarge)
        } else {
            Ok(Amount(minor_units))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_add(other.0)
            .filter(|sum| *sum <= AMOUNT_MAX)
            .map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).filter(|d| *d >= 0).map(Amount)
    }

    /// `self − other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount((self.0 - other.0).max(0))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An ISO 4217 currency that has minor units (funds and metals such as XAU have none and are
/// refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: iso_currency::Currency,
    exponent: u8,
}

impl Currency {
    /// Parses an upper-case alphabetic ISO 4217 code such as `EUR`.
    pub fn parse(code: &str) -> Result<Currency, CurrencyError> {
        let code = iso_currency::Currency::from_code(code).ok_or(CurrencyError::Unknown)?;
        let exponent = code.exponent().ok_or(CurrencyError::NoMinorUnits)?;
        let exponent = u8::try_from(exponent).map_err(|_| CurrencyError::NoMinorUnits)?;
        Ok(Currency { code, exponent })
    }

    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    /// Every currency an amount can be in, by code.
    pub fn all() -> Vec<Currency> {
        let letters = b'A'..=b'Z';
        letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| (a, b)))
            .flat_map(|(a, b)| (b'A'..=b'Z').map(move |c| [a, b, c]))
            .filter_map(|code| Currency::parse(std::str::from_utf8(&code).ok()?).ok())
            .collect()
    }

    /// Digits after the decimal point: JPY 0, EUR 2, KWD 3.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Parses decimal text in major units ("10.50", "10.5", "1e2", "7") into minor units.
    pub fn parse_decimal(&self, text: &str) -> Result<Amount, AmountError> {
        parse_decimal(text, self.exponent)
    }

    /// Renders minor units as decimal text with exactly `exponent` decimals: 1050 → "10.50".
    pub fn format_decimal(&self, amount: Amount) -> String {
        format_decimal(amount, self.exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrencyError {
    Unknown,
    NoMinorUnits,
}

impl fmt::Display for CurrencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrencyError::Unknown => f.write_str("is not an ISO 4217 currency code"),
            CurrencyError::NoMinorUnits => f.write_str("is not a currency that can be paid in"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    NotANumber,
    Negative,
    TooManyDecimals { allowed: u8 },
    TooLarge,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmountError::NotANumber => f.write_str("must be a decimal number"),
            AmountError::Negative => f.write_str("must not be negative"),
            AmountError::TooManyDecimals { allowed: 0 } => {
                f.write_str("must be a whole number in this currency")
            }
            AmountError::TooManyDecimals { allowed } => {
                write!(f, "must have at most {allowed} decimals in this currency")
            }
            AmountError::TooLarge => write!(f, "must be at most {AMOUNT_MAX} minor units"),
        }
    }
}

/// Parses `[-]digits[.digits][(e|E)[+|-]digits]` exactly into minor units with `exponent`
/// decimals. More decimals than the currency has are an error even when they are zeros
/// ("10.500" EUR, "400.00" JPY): the amount is refused, never rounded or reinterpreted.
pub fn parse_decimal(text: &str, exponent: u8) -> Result<Amount, AmountError> {
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mantissa, power) = match rest.iter().position(|b| *b == b'e' || *b == b'E') {
        Some(at) => (&rest[..at], parse_power(&rest[at + 1..])?),
        None => (rest, 0),
    };
    let (integer, fraction) = match mantissa.iter().position(|b| *b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &[][..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if integer.is_empty() || !all_digits(integer) || !all_digits(fraction) {
        return Err(AmountError::NotANumber);
    }
    if mantissa.contains(&b'.') && fraction.is_empty() {
        return Err(AmountError::NotANumber);
    }
    // The value is digits × 10^(power − fraction.len()); in minor units that is digits × 10^shift.
    let shift = power + i64::from(exponent) - fraction.len() as i64;
    if shift < 0 {
        return Err(AmountError::TooManyDecimals { allowed: exponent });
    }
    let mut minor: i64 = 0;
    for digit in integer.iter().chain(fraction) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(digit - b'0')))
            .ok_or(AmountError::TooLarge)?;
    }
    for _ in 0..shift {
        if minor == 0 {
            break;
        }
        minor = minor.checked_mul(10).ok_or(AmountError::TooLarge)?;
    }
    if negative && minor != 0 {
        return Err(AmountError::Negative);
    }
    Amount::new(minor)
}

fn parse_power(text: &[u8]) -> Result<i64, AmountError> {
    let (sign, digits) = match text.first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => (1, text),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(AmountError::NotANumber);
    }
    let value = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Ok(sign * value)
}

pub fn format_decimal(amount: Amount, exponent: u8) -> String {
    let minor = amount.minor_units();
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(u32::from(exponent));
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = usize::from(exponent)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(text: &str) -> Result<i64, AmountError> {
        parse_decimal(text, 2).map(Amount::minor_units)
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(eur("10.50"), Ok(1050));
        assert_eq!(eur("10.5"), Ok(1050));
        assert_eq!(eur("10"), Ok(1000));
        assert_eq!(eur("0.01"), Ok(1));
        assert_eq!(eur("1e2"), Ok(10000));
        assert_eq!(eur("1.5E-1"), Ok(15));
        assert_eq!(eur("-0"), Ok(0));
        assert_eq!(parse_decimal("7", 0).unwrap().minor_units(), 7);
        assert_eq!(parse_decimal("1.234", 3).unwrap().minor_units(), 1234);
    }

    #[test]
    fn refuses_what_is_not_exact() {
        assert_eq!(
            eur("10.505"),
            Err(AmountError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(
            eur("10.500"),
            Err(AmountError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(
            parse_decimal("400.00", 0),
            Err(AmountError::TooManyDecimals { allowed: 0 })
        );
        assert_eq!(
            parse_decimal("1.5", 0),
            Err(AmountError::TooManyDecimals { allowed: 0 })
        );
        assert_eq!(
            eur("1e-3"),
            Err(AmountError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(eur("-1"), Err(AmountError::Negative));
        for junk in [
            "", ".", "1.", ".5", "1,5", "abc", "1 ", " 1", "+1", "1e", "0x10", "NaN", "1e99999",
        ] {
            assert_eq!(eur(junk), Err(AmountError::NotANumber), "{junk:?}");
        }
        assert_eq!(eur("90071992547409.92"), Err(AmountError::TooLarge));
        assert_eq!(eur("99999999999999999999999"), Err(AmountError::TooLarge));
        assert_eq!(eur("1e30"), Err(AmountError::TooLarge));
    }

    #[test]
    fn currencies_carry_their_exponent() {
        assert_eq!(Currency::parse("EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("XAU"), Err(CurrencyError::NoMinorUnits));
        assert_eq!(Currency::parse("EURO"), Err(CurrencyError::Unknown));
        assert_eq!(Currency::parse("eur"), Err(CurrencyError::Unknown));
    }

    #[test]
    fn formats_with_the_exponent() {
        assert_eq!(format_decimal(Amount(1050), 2), "10.50");
        assert_eq!(format_decimal(Amount(5), 2), "0.05");
        assert_eq!(format_decimal(Amount(5), 0), "5");
        assert_eq!(format_decimal(Amount(1234), 3), "1.234");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in 0..=AMOUNT_MAX, exponent in 0u8..=4) {
            let text = format_decimal(Amount(minor), exponent);
            prop_assert_eq!(parse_decimal(&text, exponent), Ok(Amount(minor)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,30}") {
            let _ = parse_decimal(&text, 2);
        }
    }
}
