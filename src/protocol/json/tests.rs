//! The scanner and writer on hand-picked inputs (the proptest against serde_json is
//! `protocol::props`).

use super::*;

#[test]
fn members_keep_raw_values() {
    let m = object_members(r#" {"a" : [1, {"b":null}], "k\u0065y":"v\n", "n":-0.5e+3} "#).unwrap();
    assert_eq!(
        m,
        [
            (Cow::Borrowed("a"), r#"[1, {"b":null}]"#),
            (Cow::Owned("key".into()), r#""v\n""#),
            (Cow::Borrowed("n"), "-0.5e+3"),
        ]
    );
    assert_eq!(object_members("{}").unwrap(), []);
}

#[test]
fn skip_plain_stops_where_a_byte_loop_does() {
    let naive = |bytes: &[u8], i: usize| {
        (i..bytes.len())
            .find(|&j| matches!(bytes[j], b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(bytes.len())
    };
    for special in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
        for at in 0..20 {
            let mut bytes = vec![b'a'; 24];
            bytes[5] = 0xc3; // multi-byte UTF-8 never stops a run
            bytes[6] = 0xa9;
            bytes[at] = special;
            for start in 0..bytes.len() {
                assert_eq!(
                    skip_plain(&bytes, start),
                    naive(&bytes, start),
                    "{special} {at} {start}"
                );
            }
        }
    }
    assert_eq!(skip_plain(b"", 0), 0);
    assert_eq!(skip_plain(b"abc", 7), 7);
}

#[test]
fn strings_numbers_and_bools() {
    assert_eq!(
        parse_string(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\udc4b""#).unwrap(),
        "a\"\\/\u{8}\u{c}\n\r\té👋"
    );
    for bad in [
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ud800\u0041""#,
        r#""\x""#,
        "\"\u{1}\"",
        "\"abc",
    ] {
        assert!(parse_string(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
    for bad in ["18446744073709551616", "-1", "1.0", "1e2", "01", "", "x"] {
        assert!(parse_u64(bad).is_err(), "{bad}");
    }
    assert_eq!(
        (parse_bool("true"), parse_bool("false")),
        (Ok(true), Ok(false))
    );
    assert!(parse_bool("1").is_err());
}

#[test]
fn writing() {
    let mut out = String::new();
    write_string(&mut out, "a\"\\\u{1}\u{1f}\u{7f}é\n");
    assert_eq!(
        out,
        r#""a\"\\\u0001\u001f\u{7f}é\n""#.replace("\\u{7f}", "\u{7f}")
    );
    for n in [0, 7, 10, 12345, u64::MAX] {
        let mut out = String::new();
        write_u64(&mut out, n);
        assert_eq!(out, n.to_string());
    }
}

#[test]
fn depth_is_bounded() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert_eq!(validate(&ok), Ok(()));
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(validate(&deep).is_err());
    assert!(validate(&"[".repeat(100_000)).is_err());
}
