//! Every character set the server lists in `SHOW CHARACTER SET` decodes as
//! the server itself converts it: for each one, byte sequences covering its
//! repertoire (every byte of an 8-bit set; every 1- and 2-byte sequence
//! of the CJK sets and the 3-byte JIS X 0212 ones of ujis/eucjpms; code
//! points from every plane and the invalid edges of the Unicode sets) go
//! through `CONVERT(… USING utf8mb4)` on the server and through
//! `binlog_tailer::decode::Charset::decode`. They must agree exactly: the
//! same text, or an error wherever the server finds the bytes invalid (it
//! answers `?` there, with warning 1300 or 1977). The valid ones, shuffled
//! and joined 64 at a time, must also convert alike as whole strings.
//!
//! The rows-event path (values published from the binlog, per charset) is
//! covered by the all-types table (`tests/column_types.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use binlog_tailer::decode::Charset;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use test_support::{connect, Server, User};

/// Expressions per query.
const BATCH: usize = 400;
/// Codes joined into one string for the whole-string comparison.
const STRING_CODES: usize = 64;
/// Upper bound for the whole comparison.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn every_charset_decodes_as_the_servers_convert() {
    tokio::time::timeout(TEST_TIMEOUT, run())
        .await
        .expect("the comparison did not finish within its timeout");
}

async fn run() {
    let mut conn = connect(Server::Primary, User::Admin).await;
    let charsets: Vec<(String, u32)> = conn
        .query_map(
            "SELECT CHARACTER_SET_NAME, MAXLEN FROM information_schema.CHARACTER_SETS \
             ORDER BY CHARACTER_SET_NAME",
            |(name, maxlen): (String, u32)| (name, maxlen),
        )
        .await
        .expect("list the server's character sets");
    assert!(charsets.len() >= 40, "{charsets:?}");
    let mut report = BTreeMap::new();
    let mut compared = 0usize;
    // `BT_CHARSET_GENERATE=file`: write the CJK overrides
    // (crates/binlog-tailer/src/decode/charset_cjk.rs) from this server.
    let generate = match std::env::var_os("BT_CHARSET_GENERATE") {
        Some(path) => {
            let version: String = conn
                .query_first("SELECT VERSION()")
                .await
                .expect("the server version")
                .expect("one row");
            Some((path, std::cell::RefCell::new(generated_header(&version))))
        }
        None => None,
    };
    for (name, maxlen) in &charsets {
        if name == "binary" {
            continue;
        }
        let charset = Charset::from_name(name);
        assert!(
            charset.is_supported(),
            "charset {name} from SHOW CHARACTER SET has no decoder"
        );
        let samples = samples(name, *maxlen);
        compared += samples.len();
        let server = server_convert(&mut conn, name, &samples).await;
        let mut mismatches = Vec::new();
        for (bytes, converted) in samples.iter().zip(&server) {
            let ours = charset.decode(bytes);
            let agree = match (&ours, server_char_text(name, bytes, converted)) {
                (Ok(text), Some(server)) => text == server,
                (Err(_), None) => true,
                _ => false,
            };
            if !agree {
                mismatches.push(format!(
                    "{}: server {} ours {}",
                    hex(bytes),
                    match server_char_text(name, bytes, converted) {
                        Some(text) => format!("{text:?}"),
                        None => "invalid".to_owned(),
                    },
                    match &ours {
                        Ok(text) => format!("{text:?}"),
                        Err(e) => format!("error ({e})"),
                    }
                ));
            }
        }
        if let Some(out) = &generate {
            overrides(out, name, &samples, &server);
        }
        // Strings, not only single codes: the valid samples, shuffled and
        // joined STRING_CODES at a time, must convert as a whole too.
        let mut valid: Vec<&Vec<u8>> = samples
            .iter()
            .zip(&server)
            .filter(|(bytes, converted)| server_char_text(name, bytes, converted).is_some())
            .map(|(bytes, _)| bytes)
            .collect();
        shuffle(&mut valid);
        let strings: Vec<Vec<u8>> = valid
            .chunks(STRING_CODES)
            .map(|c| c.iter().flat_map(|b| b.iter().copied()).collect())
            .collect();
        compared += strings.len();
        let converted = server_convert(&mut conn, name, &strings).await;
        for (bytes, converted) in strings.iter().zip(&converted) {
            let ours = charset.decode(bytes);
            if ours.as_deref().ok() != server_char_text(name, bytes, converted) {
                mismatches.push(format!(
                    "string {}: server {:?} ours {ours:?}",
                    hex(bytes),
                    String::from_utf8_lossy(converted)
                ));
            }
        }
        if let (Some(dir), false) = (
            std::env::var_os("BT_CHARSET_DIFF_DIR"),
            mismatches.is_empty(),
        ) {
            // Every mismatch, for study: `BT_CHARSET_DIFF_DIR=/tmp/diff`.
            std::fs::create_dir_all(&dir).expect("diff dir");
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.txt")),
                mismatches.join("\n"),
            )
            .expect("write the mismatches");
        }
        if !mismatches.is_empty() {
            report.insert(name.clone(), mismatches);
        }
    }
    if let Some((path, text)) = &generate {
        std::fs::write(path, text.borrow().as_bytes()).expect("write the generated overrides");
    }
    let summary: Vec<String> = report
        .iter()
        .map(|(name, m)| {
            format!(
                "{name}: {} mismatches, e.g.\n    {}",
                m.len(),
                m.iter()
                    .take(40)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n    ")
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} of the {} sequences compared differ from the server:\n{}",
        report.values().map(Vec::len).sum::<usize>(),
        compared,
        summary.join("\n")
    );
}

/// The text the server converted a sample to, or `None` where it found the
/// bytes invalid: it answers `?` there (more of them than the sample holds
/// 0x3F bytes), U+FFFD (tis620 and big5 convert unassigned codes so)
/// or, for lone surrogates, bytes that are not UTF-8.
fn server_char_text<'a>(charset: &str, bytes: &[u8], converted: &'a [u8]) -> Option<&'a str> {
    let text = std::str::from_utf8(converted).ok()?;
    let asked = bytes.iter().filter(|b| **b == b'?').count();
    // U+FFFD is a character of the Unicode sets (the samples hold it).
    if text.matches('?').count() > asked || (text.contains('\u{fffd}') && !is_unicode(charset)) {
        return None;
    }
    Some(text)
}

/// Appends the overrides of one CJK charset (where the server's character
/// differs from its WHATWG encoding's) as runs of consecutive codes and
/// characters.
fn overrides(
    out: &(std::ffi::OsString, std::cell::RefCell<String>),
    charset: &str,
    samples: &[Vec<u8>],
    server: &[Vec<u8>],
) {
    const INVALID: u32 = u32::MAX;
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    let mut any = false;
    for (bytes, converted) in samples.iter().zip(server) {
        let Some(reference) = binlog_tailer::decode::cjk_whatwg_reference(charset, bytes) else {
            continue;
        };
        any = true;
        let wanted = server_char_text(charset, bytes, converted).map(|text| {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => panic!(
                    "{charset} {}: the server gives {text:?}, not one character",
                    hex(bytes)
                ),
            }
        });
        if wanted == reference {
            continue;
        }
        let code = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let target = wanted.map_or(INVALID, u32::from);
        match runs.last_mut() {
            Some((first, last, start))
                if *last + 1 == code
                    && (if *start == INVALID {
                        target == INVALID
                    } else {
                        target != INVALID && *start + (code - *first) == target
                    }) =>
            {
                *last = code
            }
            _ => runs.push((code, code, target)),
        }
    }
    if !any {
        return;
    }
    let mut text = out.1.borrow_mut();
    text.push_str(&format!(
        "\n/// {charset}: {} runs.\n#[rustfmt::skip]\npub(super) static {}: &[(u32, u32, u32)] = &[\n",
        runs.len(),
        charset.to_uppercase()
    ));
    for (first, last, target) in runs {
        let target = if target == INVALID {
            "INVALID".to_owned()
        } else {
            format!("0x{target:04X}")
        };
        text.push_str(&format!("    (0x{first:X}, 0x{last:X}, {target}),\n"));
    }
    text.push_str("];\n");
}

fn generated_header(version: &str) -> String {
    format!(
        "//! Generated by `BT_CHARSET_GENERATE=<this file> cargo test --test charsets`\n\
         //! against MariaDB {version}; do not edit by hand.\n\
         //!\n\
         //! For each CJK charset, the characters where MariaDB's own table (its\n\
         //! `CONVERT(... USING utf8mb4)` of every 1-, 2- and, for ujis/eucjpms,\n\
         //! 3-byte code) differs from the WHATWG encoding the decoder builds on:\n\
         //! runs `(first code, last code, first character)`, the code being the\n\
         //! character's bytes as a big-endian number, `INVALID` where MariaDB\n\
         //! has no character.\n\n\
         /// No character: the code is refused.\n\
         pub(super) const INVALID: u32 = u32::MAX;\n"
    )
}

/// The server's `CONVERT(… USING utf8mb4)` of each sample, as bytes.
async fn server_convert(conn: &mut Conn, charset: &str, samples: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(BATCH) {
        let exprs: Vec<String> = chunk
            .iter()
            .map(|bytes| {
                format!(
                    "CONVERT(CAST(X'{}' AS CHAR CHARACTER SET {charset}) USING utf8mb4)",
                    hex(bytes)
                )
            })
            .collect();
        let row: Row = conn
            .query_first(format!("SELECT {}", exprs.join(", ")))
            .await
            .unwrap_or_else(|e| panic!("CONVERT from {charset}: {e}"))
            .expect("one row");
        for value in row.unwrap() {
            match value {
                Value::Bytes(b) => out.push(b),
                other => panic!("CONVERT from {charset} gave {other:?}"),
            }
        }
    }
    out
}

/// Byte sequences covering the repertoire of `charset`, whose longest
/// character takes `maxlen` bytes.
fn samples(charset: &str, maxlen: u32) -> Vec<Vec<u8>> {
    match charset {
        _ if is_unicode(charset) => unicode_samples(charset),
        _ => {
            let mut out: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            if maxlen >= 2 {
                for lead in 0x80..=0xffu8 {
                    for trail in 0..=0xffu8 {
                        out.push(vec![lead, trail]);
                    }
                }
            }
            if maxlen >= 3 {
                // JIS X 0212 in ujis/eucjpms: 0x8F, then two bytes.
                for b1 in 0xa1..=0xfeu8 {
                    for b2 in 0xa1..=0xfeu8 {
                        out.push(vec![0x8f, b1, b2]);
                    }
                }
            }
            out
        }
    }
}

/// Code points of every kind, encoded in `charset`, and sequences invalid
/// in it.
fn unicode_samples(charset: &str) -> Vec<Vec<u8>> {
    let mut points: Vec<u32> = (0..0x800).step_by(7).collect();
    points.extend((0x800..0x10000).step_by(251));
    points.extend([0xd7ff, 0xe000, 0xfeff, 0xfffd, 0xfffe, 0xffff]);
    points.extend((0x10000..=0x10ffff).step_by(4099));
    points.extend([0x1f680, 0x10ffff]);
    let surrogates = [0xd800u32, 0xdbff, 0xdc00, 0xdfff];
    let mut out = Vec::new();
    for cp in points
        .into_iter()
        .filter(|cp| !(0xd800..0xe000).contains(cp))
    {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let mut units = [0u16; 2];
        let encoded = match charset {
            "utf8mb3" if cp > 0xffff => continue,
            "ucs2" if cp > 0xffff => continue,
            "utf8mb3" | "utf8mb4" => c.to_string().into_bytes(),
            "ucs2" | "utf16" => c
                .encode_utf16(&mut units)
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect(),
            "utf16le" => c
                .encode_utf16(&mut units)
                .iter()
                .flat_map(|u| u.to_le_bytes())
                .collect(),
            _ => cp.to_be_bytes().to_vec(),
        };
        out.push(encoded);
    }
    // Invalid (or, for ucs2, unrepresentable in UTF-8) sequences.
    match charset {
        "utf8mb3" | "utf8mb4" => {
            out.extend([
                vec![0xff],
                vec![0xc0, 0x80],
                vec![0xe0, 0x80, 0x80],
                vec![0xed, 0xa0, 0x80],
                vec![0xf4, 0x90, 0x80, 0x80],
                vec![0xe2, 0x82],
                vec![0x80],
            ]);
            // Supplementary characters are not utf8mb3.
            if charset == "utf8mb3" {
                out.push("🚀".as_bytes().to_vec());
            }
        }
        "ucs2" => out.extend(
            surrogates
                .iter()
                .map(|s| (*s as u16).to_be_bytes().to_vec()),
        ),
        "utf16" => {
            out.extend(
                surrogates
                    .iter()
                    .map(|s| (*s as u16).to_be_bytes().to_vec()),
            );
            out.push(vec![0xdc, 0x00, 0xd8, 0x00]);
        }
        "utf16le" => {
            out.extend(
                surrogates
                    .iter()
                    .map(|s| (*s as u16).to_le_bytes().to_vec()),
            );
            out.push(vec![0x00, 0xdc, 0x00, 0xd8]);
        }
        _ => {
            out.extend(surrogates.iter().map(|s| s.to_be_bytes().to_vec()));
            out.extend([
                0x11_0000u32.to_be_bytes().to_vec(),
                0xffff_ffffu32.to_be_bytes().to_vec(),
            ]);
        }
    }
    out
}

/// A fixed shuffle (xorshift), the same on every run.
fn shuffle<T>(items: &mut [T]) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

fn is_unicode(charset: &str) -> bool {
    ["utf8mb3", "utf8mb4", "ucs2", "utf16", "utf16le", "utf32"].contains(&charset)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
