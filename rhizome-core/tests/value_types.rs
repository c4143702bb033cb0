//! Typed values: text round trips, order-preserving keys, the calendar and LIKE, each
//! checked against a plain model.

use proptest::prelude::*;
use rhizome_core::value::{
    civil_from_days, days_from_civil, DataType, LikePattern, Value, ValueError, ValueErrorKind,
};
use std::cmp::Ordering;

/// Days since 1970-01-01 of 0001-01-01 and 9999-12-31.
const DAY_MIN: i32 = -719_162;
const DAY_MAX: i32 = 2_932_896;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn decimal_type() -> impl Strategy<Value = DataType> {
    (1_u8..=18)
        .prop_flat_map(|p| (Just(p), 0..=p))
        .prop_map(|(p, s)| DataType::decimal(p, s).expect("valid precision and scale"))
}

fn decimal_value(data_type: DataType) -> BoxedStrategy<Value> {
    let DataType::Decimal { precision, scale } = data_type else {
        unreachable!("decimal_value takes a DECIMAL type")
    };
    let limit = 10_i64.pow(u32::from(precision)) - 1;
    (-limit..=limit)
        .prop_map(move |units| Value::Decimal { units, scale })
        .boxed()
}

fn double_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e16,
            1e-5,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]),
        any::<f64>().prop_filter("NaN is rejected by parse and coerce", |d| !d.is_nan()),
        (-1e6..1e6_f64),
    ]
}

/// A type together with a valid value of it.
fn typed_value() -> impl Strategy<Value = (DataType, Value)> {
    prop_oneof![
        any::<i64>().prop_map(|i| (DataType::BigInt, Value::Int(i))),
        any::<i32>().prop_map(|i| (DataType::Int, Value::Int(i64::from(i)))),
        double_value().prop_map(|d| (DataType::Double, Value::Double(d))),
        decimal_type().prop_flat_map(|t| (Just(t), decimal_value(t))),
        (DAY_MIN..=DAY_MAX).prop_map(|d| (DataType::Date, Value::Date(d))),
        (i64::from(DAY_MIN) * MICROS_PER_DAY..(i64::from(DAY_MAX) + 1) * MICROS_PER_DAY)
            .prop_map(|t| (DataType::Timestamp, Value::Timestamp(t))),
        (0_i64..3).prop_map(|t| (DataType::Timestamp, Value::Timestamp(t * 1_000_000))),
        any::<bool>().prop_map(|b| (DataType::Boolean, Value::Boolean(b))),
        ("[^\u{0}]{0,20}", prop::option::of(20_u32..40))
            .prop_map(|(s, max_chars)| (DataType::Text { max_chars }, Value::Text(s))),
    ]
}

/// Two values of one non-text type.
fn keyed_pair() -> impl Strategy<Value = (DataType, Value, Value)> {
    prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (
            DataType::BigInt,
            Value::Int(a),
            Value::Int(b)
        )),
        (any::<i32>(), any::<i32>()).prop_map(|(a, b)| (
            DataType::Int,
            Value::Int(i64::from(a)),
            Value::Int(i64::from(b))
        )),
        (double_value(), double_value()).prop_map(|(a, b)| (
            DataType::Double,
            Value::Double(a),
            Value::Double(b)
        )),
        decimal_type().prop_flat_map(|t| (Just(t), decimal_value(t), decimal_value(t))),
        (DAY_MIN..=DAY_MAX, DAY_MIN..=DAY_MAX).prop_map(|(a, b)| (
            DataType::Date,
            Value::Date(a),
            Value::Date(b)
        )),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (
            DataType::Timestamp,
            Value::Timestamp(a),
            Value::Timestamp(b)
        )),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| (
            DataType::Boolean,
            Value::Boolean(a),
            Value::Boolean(b)
        )),
    ]
}

/// The order of two values of one type, computed from the values themselves.
fn model_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b).expect("no NaN"),
        (Value::Decimal { units: a, .. }, Value::Decimal { units: b, .. }) => a.cmp(b),
        (Value::Date(a), Value::Date(b)) => a.cmp(b),
        (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
        _ => unreachable!("pairs share a type"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `parse(render(v)) == v` for every type.
    #[test]
    fn render_then_parse_round_trips((data_type, value) in typed_value()) {
        let text = value.render();
        let parsed = data_type.parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&value), "text {:?} of {}", text, data_type.sql_name());
        if let (Ok(Value::Double(p)), Value::Double(v)) = (&parsed, &value) {
            prop_assert_eq!(p.to_bits(), v.to_bits(), "doubles round-trip bit for bit");
        }
        prop_assert_eq!(data_type.coerce(&value), Ok(value.clone()), "coerce to own type");
    }

    /// Keys order exactly as the values do, and `from_key` inverts `key`.
    #[test]
    fn keys_preserve_order_and_invert((data_type, a, b) in keyed_pair()) {
        let key_a = data_type.key(&a).expect("valid value has a key");
        let key_b = data_type.key(&b).expect("valid value has a key");
        prop_assert_eq!(key_a.cmp(&key_b), model_order(&a, &b), "{:?} vs {:?}", a, b);
        prop_assert_eq!(data_type.from_key(key_a), a);
        prop_assert_eq!(data_type.from_key(key_b), b);
    }

    /// `days_from_civil` is `Some` exactly for real dates and `civil_from_days` inverts it.
    #[test]
    fn civil_dates_match_model(y in 1_i32..=9999, m in 0_u32..=13, d in 0_u32..=32) {
        let valid = (1..=12).contains(&m) && d >= 1 && d <= model_days_in_month(y, m);
        let days = days_from_civil(y, m, d);
        prop_assert_eq!(days.is_some(), valid);
        if let Some(days) = days {
            prop_assert_eq!(civil_from_days(days), (y, m, d));
        }
    }

    /// LIKE agrees with a naive recursive matcher, counting characters, not bytes.
    #[test]
    fn like_matches_naive_model(
        pattern in prop::collection::vec(prop::sample::select(vec!['a', 'b', 'é', '日', '%', '_', '\\']), 0..8),
        text in prop::collection::vec(prop::sample::select(vec!['a', 'b', 'é', '日', '%', '_', '\\']), 0..10),
    ) {
        let pattern: String = pattern.into_iter().collect();
        let text: String = text.into_iter().collect();
        let expected = naive_like(&pattern, &text);
        prop_assert_eq!(LikePattern::new(&pattern).matches(&text), expected, "{:?} LIKE {:?}", text, pattern);
    }
}

fn model_is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn model_days_in_month(y: i32, m: u32) -> u32 {
    [
        31,
        if model_is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][m as usize - 1]
}

/// Every date of 0001..=9999, counted one day at a time, converts both ways.
#[test]
fn every_date_matches_day_counting_model() {
    let (mut y, mut m, mut d) = (1, 1, 1);
    for days in DAY_MIN..=DAY_MAX {
        assert_eq!(days_from_civil(y, m, d), Some(days), "{y:04}-{m:02}-{d:02}");
        assert_eq!(civil_from_days(days), (y, m, d));
        d += 1;
        if d > model_days_in_month(y, m) {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    assert_eq!((y, m, d), (10000, 1, 1));
}

/// Known anchors of the calendar.
#[test]
fn calendar_anchors() {
    assert_eq!(days_from_civil(1970, 1, 1), Some(0));
    assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
    assert_eq!(days_from_civil(1998, 9, 2), Some(10_471));
    assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
    assert_eq!(days_from_civil(1900, 2, 29), None);
    assert_eq!(days_from_civil(0, 1, 1), None);
    assert_eq!(days_from_civil(10_000, 1, 1), None);
    assert_eq!(civil_from_days(10_471), (1998, 9, 2));
}

/// The naive model of LIKE: `%` tries every split, recursively.
fn naive_like(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Token {
        Percent,
        Any,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Percent,
            '_' => Token::Any,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    fn go(p: &[Token], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(Token::Percent) => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some(Token::Any) => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(Token::Char(c)) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    let text: Vec<char> = text.chars().collect();
    go(&tokens, &text)
}

/// Hand-picked LIKE cases, including escapes and multi-byte characters.
#[test]
fn like_examples() {
    let cases = [
        ("%green%", "forest green metallic", true),
        ("%green%", "forest gree", false),
        ("PROMO%", "PROMO BRUSHED", true),
        ("%BRASS", "LARGE BRASS", true),
        ("%BRASS", "LARGE BRASSY", false),
        ("a_c", "aéc", true),
        ("a_c", "aééc", false),
        ("100\\%", "100%", true),
        ("100\\%", "1000", false),
        ("a\\_b", "a_b", true),
        ("a\\_b", "axb", false),
        ("ab\\", "ab\\", true),
        ("", "", true),
        ("", "a", false),
        ("%", "", true),
        ("%%", "日本", true),
        ("_", "日", true),
        ("%a%a%", "aa", true),
        ("%a%a%", "a", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            LikePattern::new(pattern).matches(text),
            expected,
            "{text:?} LIKE {pattern:?}"
        );
        assert_eq!(
            naive_like(pattern, text),
            expected,
            "model: {text:?} LIKE {pattern:?}"
        );
    }
}

/// Patterns that make backtracking matchers exponential finish quickly here.
#[test]
fn like_has_no_exponential_backtracking() {
    let text = "a".repeat(20_000);
    let started = std::time::Instant::now();
    assert!(!LikePattern::new("%a%a%a%a%a%a%a%a%b").matches(&text));
    assert!(!LikePattern::new("%a_a%a_a%a_a%b").matches(&text));
    assert!(LikePattern::new("%a%a%a%a%a%a%a%a%a").matches(&text));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn error_of(result: Result<Value, rhizome_core::value::ValueError>) -> String {
    result.expect_err("should be rejected").message
}

/// Every kind of value error is told apart, so that front ends can give each its own code
/// (SQLSTATE 22003, 22007, 22001, 22021, 22P02, 42804).
#[test]
fn errors_carry_their_kind() {
    let dec_15_2 = DataType::decimal(15, 2).expect("valid");
    let varchar_3 = DataType::Text { max_chars: Some(3) };
    let kind = |result: Result<Value, ValueError>| result.expect_err("rejected").kind;
    use ValueErrorKind::*;
    assert_eq!(
        kind(DataType::BigInt.parse("99999999999999999999")),
        OutOfRange
    );
    assert_eq!(kind(DataType::Int.coerce(&Value::Int(1 << 40))), OutOfRange);
    assert_eq!(kind(dec_15_2.parse("0.055")), OutOfRange);
    assert_eq!(kind(dec_15_2.parse("12345678901234")), OutOfRange);
    assert_eq!(kind(DataType::Double.parse("1e999")), OutOfRange);
    assert_eq!(kind(DataType::BigInt.parse("abc")), Invalid);
    assert_eq!(kind(dec_15_2.parse("1.2.3")), Invalid);
    assert_eq!(kind(DataType::Boolean.parse("yes")), Invalid);
    assert_eq!(kind(DataType::Date.parse("1994-02-30")), InvalidDatetime);
    assert_eq!(kind(DataType::Date.parse("tomorrow")), InvalidDatetime);
    assert_eq!(
        kind(DataType::Timestamp.parse("1994-01-01 25:00:00")),
        InvalidDatetime
    );
    assert_eq!(kind(varchar_3.parse("abcd")), TooLong);
    assert_eq!(kind(varchar_3.parse("a\0")), BadCharacter);
    assert_eq!(kind(DataType::Int.coerce(&Value::Boolean(true))), Mismatch);
    assert_eq!(
        DataType::decimal(40, 2)
            .expect_err("precision too large")
            .kind,
        BadType
    );
}

/// Every documented error is an error value with a message naming the value and the type.
#[test]
fn errors_name_value_and_type() {
    let dec_15_2 = DataType::decimal(15, 2).expect("valid");
    let varchar_25 = DataType::Text {
        max_chars: Some(25),
    };
    let cases: Vec<(Result<Value, _>, &str)> = vec![
        (DataType::BigInt.parse("99999999999999999999"), "value 99999999999999999999 overflows BIGINT"),
        (DataType::Date.parse("1994-02-30"), "1994-02-30 is not a valid DATE"),
        (dec_15_2.parse("0.055"), "0.055 has more than 2 decimal places for DECIMAL(15,2)"),
        (varchar_25.parse(&"é".repeat(30)), "text of 30 characters exceeds VARCHAR(25)"),
        (DataType::BigInt.parse("abc"), "'abc' is not a valid BIGINT"),
        (DataType::BigInt.parse(""), "'' is not a valid BIGINT"),
        (DataType::BigInt.parse("12.0"), "'12.0' is not a valid BIGINT"),
        (DataType::Int.parse("3000000000"), "value 3000000000 overflows INT"),
        (DataType::Int.coerce(&Value::Int(-2_147_483_649)), "value -2147483649 overflows INT"),
        (
            dec_15_2.parse("12345678901234"),
            "value 12345678901234 overflows DECIMAL(15,2) (at most 13 integer digits)",
        ),
        (
            dec_15_2.coerce(&Value::Int(10_000_000_000_000)),
            "value 10000000000000 overflows DECIMAL(15,2) (at most 13 integer digits)",
        ),
        (
            dec_15_2.coerce(&Value::Decimal { units: 55, scale: 3 }),
            "0.055 has more than 2 decimal places for DECIMAL(15,2)",
        ),
        (dec_15_2.parse("1.2.3"), "'1.2.3' is not a valid DECIMAL(15,2)"),
        (dec_15_2.parse("-"), "'-' is not a valid DECIMAL(15,2)"),
        (DataType::Date.parse("1994-13-01"), "1994-13-01 is not a valid DATE"),
        (DataType::Date.parse("0000-01-01"), "0000-01-01 is not a valid DATE"),
        (DataType::Date.parse("1994-1-1"), "'1994-1-1' is not a valid DATE (expected YYYY-MM-DD)"),
        (DataType::Timestamp.parse("1998-09-02 24:00:00"), "1998-09-02 24:00:00 is not a valid TIMESTAMP"),
        (
            DataType::Timestamp.parse("1998-09-02 12:30:00.1234567"),
            "'1998-09-02 12:30:00.1234567' is not a valid TIMESTAMP (expected YYYY-MM-DD HH:MM:SS[.ffffff])",
        ),
        (DataType::Double.parse("NaN"), "NaN is not allowed in DOUBLE"),
        (DataType::Double.parse("1e400"), "value 1e400 overflows DOUBLE"),
        (DataType::Double.parse("x"), "'x' is not a valid DOUBLE"),
        (DataType::Boolean.parse("yes"), "'yes' is not a valid BOOLEAN (expected true, false, t or f)"),
        (
            DataType::Text { max_chars: None }.parse("a\0b"),
            "text contains a NUL character (U+0000), which TEXT does not allow",
        ),
        (
            DataType::Date.coerce(&Value::Boolean(true)),
            "type mismatch: cannot use BOOLEAN value true as DATE",
        ),
        (
            DataType::BigInt.coerce(&Value::Decimal { units: 350, scale: 2 }),
            "type mismatch: cannot use DECIMAL value 3.50 as BIGINT",
        ),
        (DataType::Date.coerce(&Value::Text("1994-02-30".into())), "1994-02-30 is not a valid DATE"),
    ];
    for (result, expected) in cases {
        assert_eq!(error_of(result), expected);
    }
    assert_eq!(
        DataType::decimal(19, 2).expect_err("too precise").message,
        "DECIMAL precision must be between 1 and 18, got 19"
    );
    assert_eq!(
        DataType::decimal(3, 4).expect_err("scale too big").message,
        "DECIMAL scale 4 exceeds precision 3"
    );
    assert!(DataType::decimal(0, 0).is_err());
}

/// Accepted text forms and conversions give the documented values.
#[test]
fn parse_and_coerce_examples() {
    let dec_15_2 = DataType::decimal(15, 2).expect("valid");
    let dec_3_1 = DataType::decimal(3, 1).expect("valid");
    assert_eq!(DataType::BigInt.parse("12"), Ok(Value::Int(12)));
    assert_eq!(DataType::BigInt.parse(" -7 "), Ok(Value::Int(-7)));
    assert_eq!(
        dec_15_2.parse("-3.50"),
        Ok(Value::Decimal {
            units: -350,
            scale: 2
        })
    );
    assert_eq!(
        dec_15_2.parse("-3.5"),
        Ok(Value::Decimal {
            units: -350,
            scale: 2
        })
    );
    assert_eq!(
        dec_15_2.parse(".5"),
        Ok(Value::Decimal {
            units: 50,
            scale: 2
        })
    );
    assert_eq!(
        dec_15_2.parse("0.050"),
        Ok(Value::Decimal { units: 5, scale: 2 })
    );
    assert_eq!(
        dec_15_2.parse("3774200"),
        Ok(Value::Decimal {
            units: 377_420_000,
            scale: 2
        })
    );
    assert_eq!(DataType::Date.parse("1994-01-01"), Ok(Value::Date(8766)));
    let noon_and_a_half = 10_471 * MICROS_PER_DAY + (12 * 3600 + 30 * 60) * 1_000_000;
    assert_eq!(
        DataType::Timestamp.parse("1998-09-02 12:30:00"),
        Ok(Value::Timestamp(noon_and_a_half))
    );
    assert_eq!(
        DataType::Timestamp.parse("1998-09-02T12:30:00.5"),
        Ok(Value::Timestamp(noon_and_a_half + 500_000))
    );
    assert_eq!(
        DataType::Timestamp.parse("1998-09-02"),
        Ok(Value::Timestamp(10_471 * MICROS_PER_DAY))
    );
    for (text, expected) in [("true", true), ("f", false), ("T", true), ("FALSE", false)] {
        assert_eq!(DataType::Boolean.parse(text), Ok(Value::Boolean(expected)));
    }
    assert_eq!(
        DataType::Text { max_chars: Some(3) }.parse(""),
        Ok(Value::Text(String::new()))
    );
    assert_eq!(
        DataType::Text { max_chars: Some(3) }.parse(" 日本 "),
        Err(rhizome_core::value::ValueError {
            kind: ValueErrorKind::TooLong,
            message: "text of 4 characters exceeds VARCHAR(3)".into()
        })
    );

    assert_eq!(
        dec_15_2.coerce(&Value::Int(12)),
        Ok(Value::Decimal {
            units: 1200,
            scale: 2
        })
    );
    assert_eq!(
        dec_3_1.coerce(&Value::Decimal {
            units: 50,
            scale: 2
        }),
        Ok(Value::Decimal { units: 5, scale: 1 })
    );
    assert_eq!(
        dec_15_2.coerce(&Value::Decimal { units: 5, scale: 1 }),
        Ok(Value::Decimal {
            units: 50,
            scale: 2
        })
    );
    assert_eq!(
        DataType::Double.coerce(&Value::Int(3)),
        Ok(Value::Double(3.0))
    );
    assert_eq!(
        DataType::Double.coerce(&Value::Decimal { units: 1, scale: 1 }),
        Ok(Value::Double(0.1))
    );
    assert_eq!(
        DataType::Date.coerce(&Value::Text("1998-09-02".into())),
        Ok(Value::Date(10_471))
    );
    assert_eq!(DataType::Int.coerce(&Value::Null), Ok(Value::Null));
}

/// Rendering follows the documented text forms.
#[test]
fn render_examples() {
    let cases = [
        (
            Value::Decimal {
                units: 377_420_000,
                scale: 2,
            },
            "3774200.00",
        ),
        (
            Value::Decimal {
                units: -5,
                scale: 2,
            },
            "-0.05",
        ),
        (
            Value::Decimal {
                units: i64::MIN,
                scale: 18,
            },
            "-9.223372036854775808",
        ),
        (
            Value::Decimal {
                units: 42,
                scale: 0,
            },
            "42",
        ),
        (Value::Date(0), "1970-01-01"),
        (Value::Date(10_471), "1998-09-02"),
        (Value::Timestamp(1_500_000), "1970-01-01 00:00:01.500000"),
        (Value::Timestamp(-1), "1969-12-31 23:59:59.999999"),
        (Value::Double(0.1), "0.1"),
        (Value::Double(3.0), "3"),
        (Value::Double(1e300), "1e300"),
        (Value::Double(f64::NEG_INFINITY), "-Infinity"),
        (Value::Boolean(true), "true"),
        (Value::Null, "NULL"),
        (Value::Text("日本".into()), "日本"),
    ];
    for (value, expected) in cases {
        assert_eq!(value.render(), expected);
    }
}

/// Type names and classification.
#[test]
fn sql_names_and_classes() {
    let names = [
        (DataType::BigInt, "BIGINT"),
        (DataType::Int, "INT"),
        (DataType::Double, "DOUBLE"),
        (DataType::decimal(15, 2).expect("valid"), "DECIMAL(15,2)"),
        (DataType::Date, "DATE"),
        (DataType::Timestamp, "TIMESTAMP"),
        (DataType::Text { max_chars: None }, "TEXT"),
        (
            DataType::Text {
                max_chars: Some(25),
            },
            "VARCHAR(25)",
        ),
        (DataType::Boolean, "BOOLEAN"),
    ];
    for (data_type, name) in names {
        assert_eq!(data_type.sql_name(), name);
        assert_eq!(
            data_type.is_text(),
            name == "TEXT" || name.starts_with("VARCHAR")
        );
        let numeric = ["BIGINT", "INT", "DOUBLE"].contains(&name) || name.starts_with("DECIMAL");
        assert_eq!(data_type.is_numeric(), numeric);
    }
}

/// Keys exist only for valid, non-null, non-text values of the type; −0.0 keys as 0.0.
#[test]
fn key_edge_cases() {
    assert_eq!(
        DataType::Double.key(&Value::Double(-0.0)),
        DataType::Double.key(&Value::Double(0.0))
    );
    assert_eq!(DataType::Double.key(&Value::Double(f64::NAN)), None);
    assert_eq!(DataType::Int.key(&Value::Int(1 << 40)), None);
    assert_eq!(DataType::BigInt.key(&Value::Null), None);
    assert_eq!(
        DataType::Text { max_chars: None }.key(&Value::Text("a".into())),
        None
    );
    let dec_15_2 = DataType::decimal(15, 2).expect("valid");
    assert_eq!(dec_15_2.key(&Value::Decimal { units: 5, scale: 1 }), None);
    assert_eq!(
        dec_15_2.key(&Value::Decimal { units: 5, scale: 2 }),
        Some(5)
    );
    assert_eq!(DataType::Boolean.key(&Value::Boolean(true)), Some(1));
    assert!(Value::Null.is_null() && !Value::Int(0).is_null());
}
