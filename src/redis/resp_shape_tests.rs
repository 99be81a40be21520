use proptest::prelude::*;

use super::*;

/// The verdict on `bytes` fed whole, and whether it ends between replies.
fn whole(bytes: &[u8]) -> (Result<(), ShapeError>, bool) {
    let mut scanner = ShapeScanner::default();
    let verdict = scanner.feed(bytes);
    (verdict, scanner.between_replies())
}

/// The verdict on `bytes` fed in pieces cut at `cuts` (sorted, any values).
fn in_pieces(bytes: &[u8], cuts: &[usize]) -> (Result<(), ShapeError>, bool) {
    let mut scanner = ShapeScanner::default();
    let mut verdict = Ok(());
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(from, bytes.len());
        verdict = scanner.feed(&bytes[from..cut]);
        if verdict.is_err() {
            break;
        }
        from = cut;
    }
    (verdict, scanner.between_replies())
}

/// `depth` arrays of one element around `:1`.
fn nested(depth: usize) -> Vec<u8> {
    let mut bytes = b"*1\r\n".repeat(depth);
    bytes.extend_from_slice(b":1\r\n");
    bytes
}

/// Replies a real Redis sends, RESP2 and RESP3, each complete.
const VALID: &[&[u8]] = &[
    b"+PONG\r\n",
    b"-ERR invalid password\r\n",
    b":7\r\n",
    b"$5\r\nhello\r\n",
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    // A bulk payload may hold CRLF and lone CR / LF; a simple line may hold lone ones.
    b"$9\r\n\r\na\rb\nc\r\n\r\n",
    b"+a\rb\nc\r\n",
    // SENTINEL MASTERS: an array of flat field/value arrays.
    b"*2\r\n*4\r\n$4\r\nname\r\n$6\r\nmymain\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*2\r\n$4\r\nname\r\n$1\r\nb\r\n",
    b"_\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b",1.23\r\n",
    b",inf\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n:2\r\n",
    b"~3\r\n+orange\r\n+apple\r\n#t\r\n",
    b">3\r\n+message\r\n+chan\r\n$3\r\nhey\r\n",
    b"%0\r\n",
    // An attribute, then the value it describes; also inside an aggregate.
    b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",
    b"*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n",
    b"|0\r\n+OK\r\n",
];

#[test]
fn accepts_real_replies_fed_whole_or_cut_at_every_byte() {
    for reply in VALID {
        let shown = String::from_utf8_lossy(reply);
        assert_eq!(whole(reply), (Ok(()), true), "{shown:?}");
        for cut in 0..=reply.len() {
            assert_eq!(
                in_pieces(reply, &[cut]),
                (Ok(()), true),
                "{shown:?} cut at {cut}"
            );
        }
        let every_byte: Vec<usize> = (0..reply.len()).collect();
        assert_eq!(in_pieces(reply, &every_byte), (Ok(()), true), "{shown:?}");
    }
}

#[test]
fn a_truncated_reply_is_not_between_replies() {
    for reply in VALID {
        for cut in 1..reply.len() {
            assert_eq!(
                whole(&reply[..cut]),
                (Ok(()), false),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(reply)
            );
        }
    }
}

#[test]
fn accepts_replies_back_to_back() {
    let all: Vec<u8> = VALID.concat();
    assert_eq!(whole(&all), (Ok(()), true));
}

#[test]
fn refuses_nesting_past_the_limit_wherever_it_is_cut() {
    assert_eq!(whole(&nested(MAX_DEPTH)), (Ok(()), true));
    let too_deep = nested(MAX_DEPTH + 1);
    assert_eq!(whole(&too_deep).0, Err(ShapeError::TooDeep));
    for cut in 0..too_deep.len() {
        assert_eq!(
            in_pieces(&too_deep, &[cut]).0,
            Err(ShapeError::TooDeep),
            "cut at {cut}"
        );
    }
    // The reply that overflowed fred's stack: refused at the end of its 9th header, byte 36
    // of 8,004.
    let attack = nested(2_000);
    let mut scanner = ShapeScanner::default();
    assert_eq!(scanner.feed(&attack[..35]), Ok(()));
    assert_eq!(scanner.feed(&attack[35..36]), Err(ShapeError::TooDeep));
    // Every kind of aggregate counts, attributes and empty ones included.
    for open in [&b"%1\r\n+k\r\n"[..], b"~1\r\n", b">1\r\n", b"|1\r\n+k\r\n"] {
        let mut bytes = b"*1\r\n".repeat(MAX_DEPTH - 1);
        bytes.extend_from_slice(open);
        bytes.extend_from_slice(b"*0\r\n");
        assert_eq!(
            whole(&bytes).0,
            Err(ShapeError::TooDeep),
            "{:?}",
            String::from_utf8_lossy(open)
        );
    }
}

#[test]
fn depth_is_per_reply_not_per_connection() {
    let mut bytes = nested(MAX_DEPTH);
    bytes.extend_from_slice(&nested(MAX_DEPTH));
    assert_eq!(whole(&bytes), (Ok(()), true));
}

#[test]
fn counts_elements_per_reply_two_per_map_entry() {
    let count = |bytes: &[u8]| {
        let mut scanner = ShapeScanner::new(4);
        let verdict = scanner.feed(bytes);
        (verdict, scanner.between_replies())
    };
    assert_eq!(count(b"*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n"), (Ok(()), true));
    assert_eq!(
        count(b"*5\r\n"),
        (Err(ShapeError::TooManyElements(4)), false)
    );
    assert_eq!(count(b"%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n"), (Ok(()), true));
    assert_eq!(count(b"%3\r\n").0, Err(ShapeError::TooManyElements(4)));
    assert_eq!(count(b"|3\r\n").0, Err(ShapeError::TooManyElements(4)));
    // Nested declarations add up: 2 + 2 + 1.
    assert_eq!(
        count(b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n").0,
        Err(ShapeError::TooManyElements(4))
    );
    // The budget is per reply: two replies of 4 elements each pass.
    assert_eq!(
        count(b"~4\r\n:1\r\n:2\r\n:3\r\n:4\r\n>4\r\n:1\r\n:2\r\n:3\r\n:4\r\n"),
        (Ok(()), true)
    );
    // An attribute's entries count towards the reply it describes.
    assert_eq!(
        count(b"|1\r\n+a\r\n+b\r\n*3\r\n").0,
        Err(ShapeError::TooManyElements(4))
    );
    // A header declaring more than a u64 of elements is refused, not wrapped.
    assert_eq!(
        count(b"%18446744073709551615\r\n").0,
        Err(ShapeError::TooManyElements(4))
    );
}

#[test]
fn refuses_what_is_not_resp_or_never_sent_by_redis() {
    let malformed: &[&[u8]] = &[
        b"HTTP/1.1 400 Bad Request\r\n",
        b"\xff",
        b"$abc\r\n",
        b"$\r\n",
        b"$+5\r\nhello\r\n",
        b"$5 \r\n",
        b"$5\n",
        b"$5\r\nhelloXY",
        b"$-2\r\n",
        b"%-1\r\n",
        b"$-1-\r\n",
        b"*?\r\n",
        b"$?\r\n",
        b";4\r\nabcd\r\n",
        b".\r\n",
        b"HELLO 3\r\n",
        b"=3\r\ntxt\r\n",
        b"$99999999999999999999\r\n",
        b"$000000000000000000001\r\n",
        b"|1\r\n+a\r\n+b\r\n|1\r\n",
        b"|1\r\n+a\r\n+b\r\n$-1\r\n",
        b"|0\r\n*-1\r\n",
    ];
    for bytes in malformed {
        let shown = String::from_utf8_lossy(bytes);
        assert!(
            matches!(whole(bytes).0, Err(ShapeError::Malformed(_))),
            "{shown:?}: {:?}",
            whole(bytes)
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                in_pieces(bytes, &[cut]).0,
                whole(bytes).0,
                "{shown:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn stays_refused_after_a_refusal() {
    let mut scanner = ShapeScanner::default();
    assert!(scanner.feed(b"\xff").is_err());
    assert!(scanner.feed(b"+OK\r\n").is_err());
    assert!(!scanner.between_replies());
}

/// Bytes that are mostly RESP syntax, so that random inputs reach deep into the scanner.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"*1\r\n".to_vec()),
        Just(b"*2\r\n".to_vec()),
        Just(b"%1\r\n".to_vec()),
        Just(b"|1\r\n".to_vec()),
        Just(b"~0\r\n".to_vec()),
        Just(b">2\r\n".to_vec()),
        Just(b"$3\r\nabc\r\n".to_vec()),
        Just(b"$-1\r\n".to_vec()),
        Just(b":12\r\n".to_vec()),
        Just(b"+a\rb\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
        Just(b"=5\r\ntxt:a\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

/// A well-formed value no deeper than `MAX_DEPTH`.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        "[a-z\r]{0,8}".prop_map(|s| format!("+{s}\r\n").into_bytes()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|payload| {
            let mut bytes = format!("${}\r\n", payload.len()).into_bytes();
            bytes.extend_from_slice(&payload);
            bytes.extend_from_slice(b"\r\n");
            bytes
        }),
        Just(b"_\r\n".to_vec()),
        Just(b"$-1\r\n".to_vec()),
    ];
    leaf.prop_recursive(MAX_DEPTH as u32, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let mut bytes = format!("*{}\r\n", items.len()).into_bytes();
                bytes.extend(items.concat());
                bytes
            }),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(|pairs| {
                let mut bytes = format!("%{}\r\n", pairs.len()).into_bytes();
                for (key, value) in pairs {
                    bytes.extend(key);
                    bytes.extend(value);
                }
                bytes
            }),
            // An attribute, then the value it describes (which may not be another one).
            inner.prop_map(|value| {
                let mut bytes = b"|1\r\n+k\r\n".to_vec();
                bytes.extend(value);
                bytes.extend_from_slice(b":1\r\n");
                bytes
            }),
        ]
    })
}

proptest! {
    #[test]
    fn the_verdict_does_not_depend_on_where_the_input_is_cut(
        bytes in resp_ish(),
        mut cuts in proptest::collection::vec(0usize..400, 0..8),
    ) {
        cuts.sort_unstable();
        prop_assert_eq!(in_pieces(&bytes, &cuts), whole(&bytes));
    }

    #[test]
    fn well_formed_values_are_accepted_however_cut(
        values in proptest::collection::vec(value(), 1..4),
        mut cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let bytes = values.concat();
        cuts.sort_unstable();
        prop_assert_eq!(in_pieces(&bytes, &cuts), (Ok(()), true));
    }
}
