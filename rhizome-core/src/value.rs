//! Column types and values.
//!
//! Every non-text value has an order-preserving 64-bit *key* ([`DataType::key`]): BIGINT
//! and INT are themselves, DECIMAL is its scaled integer, DATE is days since 1970-01-01,
//! TIMESTAMP is microseconds since the epoch (UTC), BOOLEAN is 0/1 and DOUBLE is its IEEE
//! bits mapped to a total order. Dictionaries store keys, not `Value`s.

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    BigInt,
    Int,
    Double,
    /// Exact decimal stored as `units = value * 10^scale` in an i64 (precision ≤ 18).
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    Timestamp,
    /// `TEXT` (no limit) or `VARCHAR(n)` (at most n characters).
    Text {
        max_chars: Option<u32>,
    },
    Boolean,
}

/// One typed value, or NULL.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    /// BIGINT and INT.
    Int(i64),
    Double(f64),
    /// `units / 10^scale`.
    Decimal {
        units: i64,
        scale: u8,
    },
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
    Text(String),
    Boolean(bool),
}

/// A value that does not fit its type; the message names the value and the type, the kind
/// says which rule it broke (front ends map it to their error codes, e.g. SQLSTATE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    pub kind: ValueErrorKind,
    pub message: String,
}

/// Which rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueErrorKind {
    /// Text that does not spell a value of the type (`'abc'` as INT, NaN as DOUBLE).
    Invalid,
    /// Too large for the type, or more decimal places than its scale.
    OutOfRange,
    /// Not a date or time of the calendar, or not shaped like one.
    InvalidDatetime,
    /// Text longer than its VARCHAR limit.
    TooLong,
    /// A character the type does not allow (NUL).
    BadCharacter,
    /// A value of another kind (a BOOLEAN for an INT column).
    Mismatch,
    /// A type that cannot be declared (`DECIMAL(40, 2)`).
    BadType,
}

/// Largest DECIMAL precision: `10^18 − 1` units still fit an i64.
pub const DECIMAL_PRECISION_MAX: u8 = 18;
/// Days between 0000-03-01 and 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_FROM_YEAR_ZERO_TO_EPOCH: i64 = 719_468;
/// Days in one 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;
/// Valid calendar years for DATE and TIMESTAMP.
const YEAR_MIN: i32 = 1;
const YEAR_MAX: i32 = 9999;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// Digits of a TIMESTAMP's fractional second (microseconds).
const TIMESTAMP_FRACTION_DIGITS_MAX: usize = 6;
/// DOUBLE values of at least this magnitude render in scientific notation.
const DOUBLE_PLAIN_MAGNITUDE_MAX: f64 = 1e16;
/// Non-zero DOUBLE values below this magnitude render in scientific notation.
const DOUBLE_PLAIN_MAGNITUDE_MIN: f64 = 1e-5;

impl ValueError {
    pub(crate) fn new(kind: ValueErrorKind, message: impl Into<String>) -> Self {
        ValueError {
            kind,
            message: message.into(),
        }
    }
}

impl DataType {
    /// `DECIMAL(precision, scale)`, with `1 ≤ precision ≤ 18` and `scale ≤ precision`.
    pub fn decimal(precision: u8, scale: u8) -> Result<DataType, ValueError> {
        if precision == 0 || precision > DECIMAL_PRECISION_MAX {
            return Err(ValueError::new(
                ValueErrorKind::BadType,
                format!(
                "DECIMAL precision must be between 1 and {DECIMAL_PRECISION_MAX}, got {precision}"
            ),
            ));
        }
        if scale > precision {
            return Err(ValueError::new(
                ValueErrorKind::BadType,
                format!("DECIMAL scale {scale} exceeds precision {precision}"),
            ));
        }
        Ok(DataType::Decimal { precision, scale })
    }

    /// The type as SQL spells it: `BIGINT`, `DECIMAL(15,2)`, `VARCHAR(25)`, `TEXT`, ...
    pub fn sql_name(&self) -> String {
        match self {
            DataType::BigInt => "BIGINT".to_string(),
            DataType::Int => "INT".to_string(),
            DataType::Double => "DOUBLE".to_string(),
            DataType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            DataType::Date => "DATE".to_string(),
            DataType::Timestamp => "TIMESTAMP".to_string(),
            DataType::Text { max_chars: None } => "TEXT".to_string(),
            DataType::Text { max_chars: Some(n) } => format!("VARCHAR({n})"),
            DataType::Boolean => "BOOLEAN".to_string(),
        }
    }

    /// True for `TEXT` and `VARCHAR(n)`.
    pub fn is_text(&self) -> bool {
        matches!(self, DataType::Text { .. })
    }

    /// True for `BIGINT`, `INT`, `DOUBLE` and `DECIMAL`.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::BigInt | DataType::Int | DataType::Double | DataType::Decimal { .. }
        )
    }

    /// Parse the text form of a value (a CSV field, or the inside of a SQL literal).
    ///
    /// Accepted forms: integers `12`, `-7`; decimals `-3.50`, `.5` (trailing zeros beyond
    /// the scale are fine, other digits are not); doubles as Rust reads them plus
    /// `Infinity`; dates `YYYY-MM-DD`; timestamps `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with
    /// `T`, or a bare date meaning midnight); booleans `true`/`false`/`t`/`f` in any case.
    /// Surrounding ASCII whitespace is ignored for non-text types. The empty string is not
    /// NULL: callers decide what NULL looks like.
    pub fn parse(&self, text: &str) -> Result<Value, ValueError> {
        let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
        match *self {
            DataType::Text { .. } => {
                self.check_text(text)?;
                Ok(Value::Text(text.to_string()))
            }
            DataType::BigInt => parse_i64(trimmed, self),
            DataType::Int => {
                let value = parse_i64(trimmed, self)?;
                self.coerce(&value)
            }
            DataType::Double => parse_double(trimmed),
            DataType::Decimal { precision, scale } => parse_decimal(trimmed, precision, scale),
            DataType::Date => parse_date(trimmed).map(Value::Date),
            DataType::Timestamp => parse_timestamp(trimmed).map(Value::Timestamp),
            DataType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" | "t" => Ok(Value::Boolean(true)),
                "false" | "f" => Ok(Value::Boolean(false)),
                _ => Err(ValueError::new(
                    ValueErrorKind::Invalid,
                    format!("'{trimmed}' is not a valid BOOLEAN (expected true, false, t or f)"),
                )),
            },
        }
    }

    /// Convert a value of another literal kind into this type, exactly or not at all.
    ///
    /// Int→BIGINT/INT (range-checked for INT), Int→DECIMAL (scaled, overflow checked),
    /// DECIMAL→DECIMAL of another scale (only when no digit is lost), Int/DECIMAL/DOUBLE→DOUBLE,
    /// Text→DATE/TIMESTAMP via [`DataType::parse`], Text→TEXT/VARCHAR (length checked),
    /// same-kind values unchanged, NULL→NULL. Anything else is a type-mismatch error.
    /// [`DataType::coerce`] for an owned value: text already of this type is checked and
    /// moved, not copied (the insert path's common case).
    pub fn coerce_owned(&self, v: Value) -> Result<Value, ValueError> {
        match (*self, v) {
            (DataType::Text { .. }, Value::Text(text)) => {
                self.check_text(&text)?;
                Ok(Value::Text(text))
            }
            (_, v) => self.coerce(&v),
        }
    }

    pub fn coerce(&self, v: &Value) -> Result<Value, ValueError> {
        match (*self, v) {
            (_, Value::Null) => Ok(Value::Null),
            (DataType::BigInt, Value::Int(i)) => Ok(Value::Int(*i)),
            (DataType::Int, Value::Int(i)) => {
                if i32::try_from(*i).is_ok() {
                    Ok(Value::Int(*i))
                } else {
                    Err(ValueError::new(
                        ValueErrorKind::OutOfRange,
                        format!("value {i} overflows INT"),
                    ))
                }
            }
            (DataType::Decimal { precision, scale }, Value::Int(i)) => {
                rescale_decimal(i128::from(*i), 0, precision, scale)
            }
            (DataType::Decimal { precision, scale }, Value::Decimal { units, scale: from }) => {
                rescale_decimal(i128::from(*units), *from, precision, scale)
            }
            (DataType::Double, Value::Int(i)) => Ok(Value::Double(*i as f64)),
            (DataType::Double, Value::Decimal { .. }) => parse_double(&v.render()),
            (DataType::Double, Value::Double(d)) => {
                if d.is_nan() {
                    Err(ValueError::new(
                        ValueErrorKind::Invalid,
                        "NaN is not allowed in DOUBLE",
                    ))
                } else {
                    Ok(Value::Double(*d))
                }
            }
            (DataType::Date, Value::Date(d)) => Ok(Value::Date(*d)),
            (DataType::Timestamp, Value::Timestamp(t)) => Ok(Value::Timestamp(*t)),
            (DataType::Date | DataType::Timestamp, Value::Text(text)) => self.parse(text),
            (DataType::Text { .. }, Value::Text(text)) => {
                self.check_text(text)?;
                Ok(Value::Text(text.clone()))
            }
            (DataType::Boolean, Value::Boolean(b)) => Ok(Value::Boolean(*b)),
            _ => Err(ValueError::new(
                ValueErrorKind::Mismatch,
                format!(
                    "type mismatch: cannot use {} value {} as {}",
                    v.kind_name(),
                    v.render(),
                    self.sql_name()
                ),
            )),
        }
    }

    /// The order-preserving key of a non-null, non-text value of this type: BIGINT/INT the
    /// integer, DECIMAL its units, DATE its days, TIMESTAMP its microseconds, BOOLEAN 0/1,
    /// DOUBLE its bits mapped to a total order (−0.0 keyed as 0.0).
    ///
    /// `None` for NULL, for text, and for a value that is not a valid value of this type
    /// (wrong kind, INT out of range, DECIMAL of another scale or too many digits, NaN):
    /// [`DataType::coerce`] such values first.
    pub fn key(&self, v: &Value) -> Option<i64> {
        match (*self, v) {
            (DataType::BigInt, Value::Int(i)) => Some(*i),
            (DataType::Int, Value::Int(i)) => i32::try_from(*i).ok().map(i64::from),
            (DataType::Decimal { precision, scale }, Value::Decimal { units, scale: s }) => {
                let fits = i128::from(*units).unsigned_abs() < pow10(precision)?.unsigned_abs();
                (*s == scale && fits).then_some(*units)
            }
            (DataType::Date, Value::Date(d)) => Some(i64::from(*d)),
            (DataType::Timestamp, Value::Timestamp(t)) => Some(*t),
            (DataType::Boolean, Value::Boolean(b)) => Some(i64::from(*b)),
            (DataType::Double, Value::Double(d)) => double_key(*d),
            _ => None,
        }
    }

    /// The value whose [`DataType::key`] is `key`. Text types have no keys and give NULL;
    /// a key that `key` never produces (a DATE key beyond i32) gives an unspecified value.
    pub fn from_key(&self, key: i64) -> Value {
        match *self {
            DataType::BigInt | DataType::Int => Value::Int(key),
            DataType::Decimal { scale, .. } => Value::Decimal { units: key, scale },
            DataType::Date => Value::Date(key as i32),
            DataType::Timestamp => Value::Timestamp(key),
            DataType::Boolean => Value::Boolean(key != 0),
            DataType::Double => {
                let bits = if key < 0 { key ^ i64::MAX } else { key };
                Value::Double(f64::from_bits(bits as u64))
            }
            DataType::Text { .. } => Value::Null,
        }
    }

    /// Reject NUL characters and text longer than a VARCHAR's limit (in characters).
    pub(crate) fn check_text(&self, text: &str) -> Result<(), ValueError> {
        if text.contains('\0') {
            return Err(ValueError::new(
                ValueErrorKind::BadCharacter,
                format!(
                    "text contains a NUL character (U+0000), which {} does not allow",
                    self.sql_name()
                ),
            ));
        }
        if let DataType::Text {
            max_chars: Some(max),
        } = *self
        {
            // Bytes ≥ characters, so short byte strings need no counting.
            if text.len() > max as usize {
                let chars = text.chars().count();
                if chars > max as usize {
                    return Err(ValueError::new(
                        ValueErrorKind::TooLong,
                        format!("text of {chars} characters exceeds VARCHAR({max})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Value {
    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text form [`DataType::parse`] reads back: decimals keep their scale
    /// (`3774200.00`, `-0.05`), dates `YYYY-MM-DD`, timestamps `YYYY-MM-DD HH:MM:SS` plus
    /// `.ffffff` when fractional, doubles shortest round-trip (`0.1`, `1e300`, `Infinity`),
    /// booleans `true`/`false`, NULL as `NULL`.
    pub fn render(&self) -> String {
        match self {
            Value::Null => "NULL".to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => render_double(*d),
            Value::Decimal { units, scale } => render_decimal(*units, *scale),
            Value::Date(days) => render_date(*days),
            Value::Timestamp(micros) => render_timestamp(*micros),
            Value::Text(text) => text.clone(),
            Value::Boolean(b) => b.to_string(),
        }
    }

    /// The kind of literal this is, for error messages.
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "integer",
            Value::Double(_) => "DOUBLE",
            Value::Decimal { .. } => "DECIMAL",
            Value::Date(_) => "DATE",
            Value::Timestamp(_) => "TIMESTAMP",
            Value::Text(_) => "text",
            Value::Boolean(_) => "BOOLEAN",
        }
    }
}

/// `10^exponent`, or `None` beyond i128.
fn pow10(exponent: u8) -> Option<i128> {
    10_i128.checked_pow(u32::from(exponent))
}

fn parse_i64(text: &str, data_type: &DataType) -> Result<Value, ValueError> {
    use std::num::IntErrorKind;
    match text.parse::<i64>() {
        Ok(i) => Ok(Value::Int(i)),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(ValueError::new(
                ValueErrorKind::OutOfRange,
                format!("value {text} overflows {}", data_type.sql_name()),
            ))
        }
        Err(_) => Err(ValueError::new(
            ValueErrorKind::Invalid,
            format!("'{text}' is not a valid {}", data_type.sql_name()),
        )),
    }
}

fn parse_double(text: &str) -> Result<Value, ValueError> {
    let d: f64 = text.parse().map_err(|_| {
        ValueError::new(
            ValueErrorKind::Invalid,
            format!("'{text}' is not a valid DOUBLE"),
        )
    })?;
    if d.is_nan() {
        return Err(ValueError::new(
            ValueErrorKind::Invalid,
            "NaN is not allowed in DOUBLE",
        ));
    }
    if d.is_infinite() {
        let unsigned = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
        if unsigned != "inf" && unsigned != "infinity" {
            return Err(ValueError::new(
                ValueErrorKind::OutOfRange,
                format!("value {text} overflows DOUBLE"),
            ));
        }
    }
    Ok(Value::Double(d))
}

fn render_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        };
    }
    let magnitude = d.abs();
    if magnitude != 0.0
        && !(DOUBLE_PLAIN_MAGNITUDE_MIN..DOUBLE_PLAIN_MAGNITUDE_MAX).contains(&magnitude)
    {
        format!("{d:e}")
    } else {
        format!("{d}")
    }
}

/// Read `[sign] digits [. digits]` into units at `scale`, rejecting lost digits and overflow.
fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<Value, ValueError> {
    let type_name = || DataType::Decimal { precision, scale }.sql_name();
    let invalid = || {
        ValueError::new(
            ValueErrorKind::Invalid,
            format!("'{text}' is not a valid {}", type_name()),
        )
    };
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if integer.is_empty() && fraction.is_empty() || !all_digits(integer) || !all_digits(fraction) {
        return Err(invalid());
    }
    let overflow = || {
        ValueError::new(
            ValueErrorKind::OutOfRange,
            format!(
                "value {text} overflows {} (at most {} integer digits)",
                type_name(),
                precision.saturating_sub(scale)
            ),
        )
    };
    let mut units: i128 = 0;
    for b in integer.bytes() {
        units = units
            .checked_mul(10)
            .and_then(|u| u.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    let (kept, dropped) = fraction.split_at(fraction.len().min(usize::from(scale)));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(ValueError::new(
            ValueErrorKind::OutOfRange,
            format!(
                "{text} has more than {scale} decimal places for {}",
                type_name()
            ),
        ));
    }
    for position in 0..usize::from(scale) {
        let digit = kept.as_bytes().get(position).map_or(0, |b| b - b'0');
        units = units
            .checked_mul(10)
            .and_then(|u| u.checked_add(i128::from(digit)))
            .ok_or_else(overflow)?;
    }
    if negative {
        units = -units;
    }
    check_decimal_units(units, precision, scale).map_err(|_| overflow())
}

/// Units at `scale` as a DECIMAL(precision, scale) value, or an overflow error.
fn check_decimal_units(units: i128, precision: u8, scale: u8) -> Result<Value, ValueError> {
    let limit = pow10(precision).unwrap_or(i128::MAX);
    match i64::try_from(units) {
        Ok(units) if i128::from(units).abs() < limit => Ok(Value::Decimal { units, scale }),
        _ => Err(ValueError::new(
            ValueErrorKind::OutOfRange,
            format!(
                "value {} overflows {} (at most {} integer digits)",
                render_decimal_wide(units, scale),
                DataType::Decimal { precision, scale }.sql_name(),
                precision.saturating_sub(scale)
            ),
        )),
    }
}

/// Move `units` from scale `from` to scale `to`, exactly or with an error.
fn rescale_decimal(units: i128, from: u8, precision: u8, to: u8) -> Result<Value, ValueError> {
    let type_name = || {
        DataType::Decimal {
            precision,
            scale: to,
        }
        .sql_name()
    };
    let overflow = || {
        ValueError::new(
            ValueErrorKind::OutOfRange,
            format!(
                "value {} overflows {} (at most {} integer digits)",
                render_decimal_wide(units, from),
                type_name(),
                precision.saturating_sub(to)
            ),
        )
    };
    let scaled = if to >= from {
        let factor = pow10(to - from).ok_or_else(overflow)?;
        units.checked_mul(factor).ok_or_else(overflow)?
    } else {
        let divisor = pow10(from - to);
        match divisor {
            Some(divisor) if units % divisor == 0 => units / divisor,
            None if units == 0 => 0,
            _ => {
                return Err(ValueError::new(
                    ValueErrorKind::OutOfRange,
                    format!(
                        "{} has more than {to} decimal places for {}",
                        render_decimal_wide(units, from),
                        type_name()
                    ),
                ))
            }
        }
    };
    check_decimal_units(scaled, precision, to).map_err(|_| overflow())
}

fn render_decimal(units: i64, scale: u8) -> String {
    render_decimal_wide(i128::from(units), scale)
}

fn render_decimal_wide(units: i128, scale: u8) -> String {
    let digits = units.unsigned_abs().to_string();
    let sign = if units < 0 { "-" } else { "" };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (integer, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{integer}.{fraction}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` unless the date exists and
/// its year is in 0001..=9999.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(YEAR_MIN..=YEAR_MAX).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    if d == 0 || d > days_in_month(y, m) {
        return None;
    }
    // Howard Hinnant's algorithm: years start on March 1 so the leap day comes last.
    let (m, d) = (i64::from(m), i64::from(d));
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    i32::try_from(era * DAYS_PER_ERA + day_of_era - DAYS_FROM_YEAR_ZERO_TO_EPOCH).ok()
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01. Total:
/// days outside 0001..=9999 give years outside that range.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + DAYS_FROM_YEAR_ZERO_TO_EPOCH;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // |days| ≤ 2^31 keeps the year within ±6 million and month/day within 1..=31.
    (year as i32, month as u32, day as u32)
}

fn is_leap_year(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Digits at `text[range]` as a number, `None` unless they are all ASCII digits.
fn digits_at(text: &[u8], start: usize, count: usize) -> Option<u32> {
    let digits = text.get(start..start + count)?;
    digits.iter().try_fold(0_u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DD` into days since 1970-01-01.
fn parse_date(text: &str) -> Result<i32, ValueError> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
    let fields = (
        digits_at(bytes, 0, 4),
        digits_at(bytes, 5, 2),
        digits_at(bytes, 8, 2),
    );
    match (shaped, fields) {
        (true, (Some(y), Some(m), Some(d))) => days_from_civil(y as i32, m, d).ok_or_else(|| {
            ValueError::new(
                ValueErrorKind::InvalidDatetime,
                format!("{text} is not a valid DATE"),
            )
        }),
        _ => Err(ValueError::new(
            ValueErrorKind::InvalidDatetime,
            format!("'{text}' is not a valid DATE (expected YYYY-MM-DD)"),
        )),
    }
}

/// `YYYY-MM-DD[( |T)HH:MM:SS[.f{1,6}]]` into microseconds since the epoch.
fn parse_timestamp(text: &str) -> Result<i64, ValueError> {
    let invalid = || {
        ValueError::new(
            ValueErrorKind::InvalidDatetime,
            format!("'{text}' is not a valid TIMESTAMP (expected YYYY-MM-DD HH:MM:SS[.ffffff])"),
        )
    };
    let date_text = text.get(..10).ok_or_else(invalid)?;
    let days = parse_date(date_text).map_err(|_| invalid())?;
    let bytes = text.as_bytes();
    let mut micros = i64::from(days) * MICROS_PER_DAY;
    if bytes.len() == 10 {
        return Ok(micros);
    }
    let shaped = bytes.len() >= 19
        && matches!(bytes[10], b' ' | b'T')
        && bytes[13] == b':'
        && bytes[16] == b':';
    let (hour, minute, second) = match (
        digits_at(bytes, 11, 2),
        digits_at(bytes, 14, 2),
        digits_at(bytes, 17, 2),
    ) {
        (Some(h), Some(m), Some(s)) if shaped => (h, m, s),
        _ => return Err(invalid()),
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(ValueError::new(
            ValueErrorKind::InvalidDatetime,
            format!("{text} is not a valid TIMESTAMP"),
        ));
    }
    micros +=
        (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * MICROS_PER_SECOND;
    if bytes.len() > 19 {
        let fraction = &bytes[20..];
        let valid = bytes[19] == b'.'
            && (1..=TIMESTAMP_FRACTION_DIGITS_MAX).contains(&fraction.len())
            && fraction.iter().all(u8::is_ascii_digit);
        if !valid {
            return Err(invalid());
        }
        let mut fraction_micros: i64 = 0;
        for position in 0..TIMESTAMP_FRACTION_DIGITS_MAX {
            let digit = fraction.get(position).map_or(0, |b| b - b'0');
            fraction_micros = fraction_micros * 10 + i64::from(digit);
        }
        micros += fraction_micros;
    }
    Ok(micros)
}

fn render_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn render_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let micros_of_day = micros.rem_euclid(MICROS_PER_DAY);
    // |micros| / MICROS_PER_DAY < 2^31 for every i64.
    let date = render_date(days as i32);
    let seconds_of_day = micros_of_day / MICROS_PER_SECOND;
    let fraction = micros_of_day % MICROS_PER_SECOND;
    let (h, m, s) = (
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    );
    if fraction == 0 {
        format!("{date} {h:02}:{m:02}:{s:02}")
    } else {
        format!("{date} {h:02}:{m:02}:{s:02}.{fraction:06}")
    }
}

/// IEEE bits of a non-NaN double as an i64 whose order is the numeric order.
fn double_key(d: f64) -> Option<i64> {
    if d.is_nan() {
        return None;
    }
    // −0.0 + 0.0 is +0.0: one key for both zeros.
    let bits = (d + 0.0).to_bits() as i64;
    // Negative doubles have the sign bit set and grow in magnitude as their bits grow:
    // flipping the other 63 bits reverses that order and keeps them below the positives.
    Some(if bits < 0 { bits ^ i64::MAX } else { bits })
}

/// One element of a compiled LIKE pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LikeToken {
    /// This exact character.
    Char(char),
    /// `_`: any one character.
    AnyChar,
}

/// A run of the pattern between two `%`.
#[derive(Debug, Clone)]
struct LikeSegment {
    tokens: Vec<LikeToken>,
    /// The segment as a plain string when it has no `_`, for a fast substring search.
    literal: Option<String>,
}

impl LikeSegment {
    fn new(tokens: Vec<LikeToken>) -> Self {
        let literal = tokens
            .iter()
            .map(|t| match t {
                LikeToken::Char(c) => Some(*c),
                LikeToken::AnyChar => None,
            })
            .collect::<Option<String>>();
        LikeSegment { tokens, literal }
    }

    /// The byte offset after the segment when it matches `text` at byte offset `start`.
    fn match_at(&self, text: &str, start: usize) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return text[start..]
                .starts_with(literal.as_str())
                .then(|| start + literal.len());
        }
        let mut chars = text[start..].chars();
        for token in &self.tokens {
            let c = chars.next()?;
            if let LikeToken::Char(expected) = token {
                if c != *expected {
                    return None;
                }
            }
        }
        Some(text.len() - chars.as_str().len())
    }

    /// The leftmost match at or after byte offset `from`, as the byte offset after it.
    fn find_from(&self, text: &str, from: usize) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return text[from..]
                .find(literal.as_str())
                .map(|i| from + i + literal.len());
        }
        let tail = &text[from..];
        tail.char_indices()
            .map(|(i, _)| from + i)
            .chain(std::iter::once(text.len()))
            .find_map(|start| self.match_at(text, start))
    }
}

/// SQL `LIKE` with `%` (any run of characters), `_` (one character) and `\` escaping the
/// next character, compiled once and matched against many distinct values.
///
/// Matching anchors the first and last `%`-separated segments at the ends and finds each
/// middle segment at its leftmost position, so it takes O(text × pattern) at worst and never
/// backtracks exponentially. `_` counts characters, not bytes.
#[derive(Debug, Clone)]
pub struct LikePattern {
    /// Segments between `%`s (a pattern without `%` has exactly one).
    segments: Vec<LikeSegment>,
    /// Whether the pattern has any `%`: without one, the only segment must be the whole text.
    has_percent: bool,
}

impl LikePattern {
    /// Compile a LIKE pattern. A trailing lone `\` stands for itself.
    pub fn new(pattern: &str) -> Self {
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let mut has_percent = false;
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    has_percent = true;
                    segments.push(LikeSegment::new(std::mem::take(&mut current)));
                }
                '_' => current.push(LikeToken::AnyChar),
                '\\' => current.push(LikeToken::Char(chars.next().unwrap_or('\\'))),
                other => current.push(LikeToken::Char(other)),
            }
        }
        segments.push(LikeSegment::new(current));
        LikePattern {
            segments,
            has_percent,
        }
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let Some((first, rest)) = self.segments.split_first() else {
            return false;
        };
        if !self.has_percent {
            return first.match_at(text, 0) == Some(text.len());
        }
        let Some((last, middle)) = rest.split_last() else {
            return false;
        };
        let Some(mut cursor) = first.match_at(text, 0) else {
            return false;
        };
        for segment in middle {
            match segment.find_from(text, cursor) {
                Some(end) => cursor = end,
                None => return false,
            }
        }
        // The last segment has a fixed length in characters: it can only sit at the end.
        let last_chars = last.tokens.len();
        let last_start = if last_chars == 0 {
            Some(text.len())
        } else {
            text.char_indices()
                .rev()
                .nth(last_chars - 1)
                .map(|(i, _)| i)
        };
        match last_start {
            Some(start) if start >= cursor => last.match_at(text, start) == Some(text.len()),
            _ => false,
        }
    }
}
