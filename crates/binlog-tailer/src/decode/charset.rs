//! Character sets: collation ids (as TABLE_MAP metadata carries them) →
//! charset families, and text decoding without replacement characters.

use std::collections::HashMap;

use encoding_rs::Encoding;

use super::charset_cjk as cjk;
use super::charset_tables::{self as tables, UNDEFINED};
use super::ValueError;

/// The character set of a column, resolved from its collation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4: validated UTF-8.
    Utf8,
    /// utf8mb3: validated UTF-8 of at most 3 bytes a character (the BMP).
    Utf8mb3,
    /// ascii: bytes 0x00..=0x7f only.
    Ascii,
    /// MariaDB's latin1, which is Windows-1252 (cp1252) with the five bytes
    /// cp1252 leaves undefined mapped to the C1 controls.
    Latin1,
    /// binary: bytes, not text.
    Binary,
    /// Every other character set MariaDB 10.11 and 11.8 ship, each with
    /// its own decoder (see [`LEGACY`]).
    Legacy(&'static Legacy),
    /// A charset this module does not know, by name, or `"collation N"`
    /// for an id the map does not know.
    Other(String),
}

impl Charset {
    /// The charset of a character set name as `information_schema` spells
    /// it.
    pub fn from_name(name: &str) -> Charset {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "utf8mb4" => Charset::Utf8,
            "utf8mb3" | "utf8" => Charset::Utf8mb3,
            "ascii" => Charset::Ascii,
            "latin1" => Charset::Latin1,
            "binary" => Charset::Binary,
            other => match LEGACY.iter().find(|l| l.name == other) {
                Some(legacy) => Charset::Legacy(legacy),
                None => Charset::Other(name),
            },
        }
    }

    /// A name for messages: MariaDB's.
    pub fn name(&self) -> &str {
        match self {
            Charset::Utf8 => "utf8mb4",
            Charset::Utf8mb3 => "utf8mb3",
            Charset::Ascii => "ascii",
            Charset::Latin1 => "latin1",
            Charset::Binary => "binary",
            Charset::Legacy(legacy) => legacy.name,
            Charset::Other(name) => name,
        }
    }

    /// Whether text in this charset can be decoded ([`Charset::Other`] and
    /// binary cannot).
    pub fn is_supported(&self) -> bool {
        !matches!(self, Charset::Other(_) | Charset::Binary)
    }

    /// Decodes text in this charset to UTF-8, exactly as the server's
    /// `CONVERT(… USING utf8mb4)` does.
    ///
    /// # Errors
    /// [`ValueError::InvalidText`] for bytes the charset does not define
    /// (naming the charset, the offset and the bytes), never a replacement
    /// character; [`ValueError::UnsupportedCharset`] for binary and unknown
    /// charsets.
    pub fn decode(&self, bytes: &[u8]) -> Result<String, ValueError> {
        decode_text(bytes, Some(self))
    }
}

/// One of MariaDB's character sets beyond utf8mb3/utf8mb4, ascii, latin1
/// and binary, and how its text is decoded.
#[derive(PartialEq, Eq)]
pub struct Legacy {
    /// MariaDB's name (`SHOW CHARACTER SET`).
    pub name: &'static str,
    decoder: Decoder,
}

impl std::fmt::Debug for Legacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Legacy({})", self.name)
    }
}

/// How a [`Legacy`] charset is decoded.
#[derive(Debug, PartialEq, Eq)]
enum Decoder {
    /// A WHATWG encoding (`encoding_rs`) that agrees with MariaDB's table on
    /// every byte (`tests/charsets.rs` checks it against the server).
    Whatwg(&'static Encoding),
    /// A single-byte table of MariaDB's own, generated from the server
    /// (`charset_tables.rs`).
    Table(&'static [u16; 256]),
    /// A double-byte CJK charset: MariaDB's byte structure, then the WHATWG
    /// encoding's mapping, with MariaDB's differences (see [`Cjk`]).
    Cjk(Cjk),
    /// ucs2: UCS-2 big-endian (BMP only, no surrogate pairs).
    Ucs2,
    /// utf16: UTF-16 big-endian.
    Utf16Be,
    /// utf16le: UTF-16 little-endian.
    Utf16Le,
    /// utf32: UTF-32 big-endian.
    Utf32,
}

/// Maps collation ids (as found in TABLE_MAP optional metadata) to charsets.
///
/// Build it from the server at start-up with [`CharsetMap::from_rows`] over
///
/// ```sql
/// SELECT ID, CHARACTER_SET_NAME
///   FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY
/// ```
///
/// In MariaDB 10.10+ `information_schema.COLLATIONS` lists the UCA-14.0
/// collations (`utf8mb4_uca1400_ai_ci`, ids 2304..) with a NULL id and
/// charset; only `COLLATION_CHARACTER_SET_APPLICABILITY` has their ids, and
/// those are the ids a TABLE_MAP carries (the default collation of 11.5+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetMap {
    by_id: HashMap<u32, Charset>,
}

impl CharsetMap {
    /// Built-in table of the collation ids of MariaDB 10.11.19 and 11.8.9, from
    /// `information_schema.COLLATION_CHARACTER_SET_APPLICABILITY`: binary
    /// 63; latin1 5, 8, 15, 31, 47, 48, 49, 94, 1032, 1071; ascii 11, 65,
    /// 1035, 1089; utf8mb3 33, 83, 192–215, 223, 576–579, ..., 2048–2247;
    /// utf8mb4 45, 46, 224–247, 255–309, 608–611, ..., 2304–2503; and every other
    /// charset by name.
    pub fn builtin() -> Self {
        let mut by_id = HashMap::new();
        for (first, last, name) in BUILTIN_COLLATIONS {
            let charset = Charset::from_name(name);
            for id in *first..=*last {
                by_id.insert(id, charset.clone());
            }
        }
        CharsetMap { by_id }
    }

    /// From (collation id, character set name) rows, as returned by the
    /// query above, laid over [`CharsetMap::builtin`]: the server's rows
    /// win, and ids they lack (a query on `information_schema.COLLATIONS`
    /// misses the UCA-14.0 ids) still resolve. Collation ids are fixed
    /// across MariaDB versions, so the fallback cannot contradict a server.
    pub fn from_rows(rows: impl IntoIterator<Item = (u32, String)>) -> Self {
        let mut map = CharsetMap::builtin();
        for (id, name) in rows {
            map.by_id.insert(id, Charset::from_name(&name));
        }
        map
    }

    /// The charset of a collation id; an unknown id gives
    /// `Other("collation {id}")`.
    pub fn resolve(&self, collation_id: u32) -> Charset {
        self.by_id
            .get(&collation_id)
            .cloned()
            .unwrap_or_else(|| Charset::Other(format!("collation {collation_id}")))
    }

    /// How many collation ids the map knows.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl Default for CharsetMap {
    fn default() -> Self {
        CharsetMap::builtin()
    }
}

/// Decodes text bytes of a column to UTF-8. `None` (no charset metadata):
/// the bytes must be valid UTF-8. Binary is not text: the caller handles it
/// first.
pub(crate) fn decode_text(bytes: &[u8], charset: Option<&Charset>) -> Result<String, ValueError> {
    let invalid = |name: &str, at: usize| ValueError::InvalidText {
        charset: name.to_owned(),
        valid_up_to: at,
        bytes: bytes.iter().skip(at).take(8).copied().collect(),
    };
    match charset {
        None | Some(Charset::Utf8) | Some(Charset::Utf8mb3) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                // utf8mb3 holds the BMP only: no 4-byte sequence.
                if charset == Some(&Charset::Utf8mb3) {
                    if let Some(at) = bytes.iter().position(|b| *b >= 0xf0) {
                        return Err(invalid("utf8mb3", at));
                    }
                }
                Ok(text.to_owned())
            }
            Err(e) => Err(invalid(
                match charset {
                    None => "utf8 (no charset metadata)",
                    Some(c) => c.name(),
                },
                e.valid_up_to(),
            )),
        },
        Some(Charset::Ascii) => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
            Some(at) => Err(invalid("ascii", at)),
        },
        // WHATWG windows-1252 maps every byte (0x81, 0x8d, 0x8f, 0x90, 0x9d
        // to the C1 controls, as MariaDB's latin1 does), so this never
        // fails.
        Some(Charset::Latin1) => {
            whatwg(encoding_rs::WINDOWS_1252, bytes).map_err(|at| invalid("latin1", at))
        }
        Some(Charset::Legacy(legacy)) => {
            let decoded = match &legacy.decoder {
                Decoder::Whatwg(encoding) => whatwg(encoding, bytes),
                Decoder::Table(table) => single_byte(table, bytes),
                Decoder::Cjk(cjk) => cjk.decode(bytes),
                Decoder::Ucs2 => utf16(bytes, u16::from_be_bytes, false),
                Decoder::Utf16Be => utf16(bytes, u16::from_be_bytes, true),
                Decoder::Utf16Le => utf16(bytes, u16::from_le_bytes, true),
                Decoder::Utf32 => utf32(bytes),
            };
            decoded.map_err(|at| invalid(legacy.name, at))
        }
        Some(Charset::Binary) => Err(ValueError::UnsupportedCharset {
            charset: "binary (as text)".to_owned(),
        }),
        Some(Charset::Other(name)) => Err(ValueError::UnsupportedCharset {
            charset: name.clone(),
        }),
    }
}

/// Where decoding failed: the offset of the first byte not decoded.
type Decoded = Result<String, usize>;

/// A WHATWG decoder, without replacement characters.
fn whatwg(encoding: &'static Encoding, bytes: &[u8]) -> Decoded {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len()),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(out),
        encoding_rs::DecoderResult::Malformed(bad, unread) => Err(read
            .saturating_sub(usize::from(bad))
            .saturating_sub(usize::from(unread))),
        // The buffer was sized for the worst case.
        encoding_rs::DecoderResult::OutputFull => Err(read),
    }
}

/// A single-byte charset from its table.
fn single_byte(table: &[u16; 256], bytes: &[u8]) -> Decoded {
    let mut out = String::with_capacity(bytes.len());
    for (at, b) in bytes.iter().enumerate() {
        let unit = table[usize::from(*b)];
        match char::from_u32(u32::from(unit)) {
            Some(c) if unit != UNDEFINED => out.push(c),
            _ => return Err(at),
        }
    }
    Ok(out)
}

/// UCS-2 (`pairs` false: a surrogate is an error, as UTF-8 cannot hold it)
/// or UTF-16 (`pairs` true) in 2-byte units read by `unit`.
fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16, pairs: bool) -> Decoded {
    let mut out = String::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let read = |i: usize| bytes.get(i..i + 2).map(|b| unit([b[0], b[1]]));
        let first = read(at).ok_or(at)?;
        let (c, len) = match first {
            0xd800..=0xdbff if pairs => match read(at + 2) {
                Some(low @ 0xdc00..=0xdfff) => (
                    0x10000 + ((u32::from(first) - 0xd800) << 10) + (u32::from(low) - 0xdc00),
                    4,
                ),
                _ => return Err(at),
            },
            _ => (u32::from(first), 2),
        };
        out.push(char::from_u32(c).ok_or(at)?);
        at += len;
    }
    Ok(out)
}

/// UTF-32 big-endian.
fn utf32(bytes: &[u8]) -> Decoded {
    let mut out = String::with_capacity(bytes.len() / 4);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let at = i * 4;
        let unit: [u8; 4] = chunk.try_into().map_err(|_| at)?;
        out.push(char::from_u32(u32::from_be_bytes(unit)).ok_or(at)?);
    }
    Ok(out)
}

/// The collation ids of MariaDB 10.11.19 and 11.8.9 (11.8 adds 46 ids, e.g.
/// 255–309 and 579, and changes none): (first id, last id, charset name),
/// consecutive ids of one charset merged, sorted by id.
#[rustfmt::skip]
const BUILTIN_COLLATIONS: &[(u32, u32, &str)] = &[
    (1, 1, "big5"),
    (2, 2, "latin2"),
    (3, 3, "dec8"),
    (4, 4, "cp850"),
    (5, 5, "latin1"),
    (6, 6, "hp8"),
    (7, 7, "koi8r"),
    (8, 8, "latin1"),
    (9, 9, "latin2"),
    (10, 10, "swe7"),
    (11, 11, "ascii"),
    (12, 12, "ujis"),
    (13, 13, "sjis"),
    (14, 14, "cp1251"),
    (15, 15, "latin1"),
    (16, 16, "hebrew"),
    (18, 18, "tis620"),
    (19, 19, "euckr"),
    (20, 20, "latin7"),
    (21, 21, "latin2"),
    (22, 22, "koi8u"),
    (23, 23, "cp1251"),
    (24, 24, "gb2312"),
    (25, 25, "greek"),
    (26, 26, "cp1250"),
    (27, 27, "latin2"),
    (28, 28, "gbk"),
    (29, 29, "cp1257"),
    (30, 30, "latin5"),
    (31, 31, "latin1"),
    (32, 32, "armscii8"),
    (33, 33, "utf8mb3"),
    (34, 34, "cp1250"),
    (35, 35, "ucs2"),
    (36, 36, "cp866"),
    (37, 37, "keybcs2"),
    (38, 38, "macce"),
    (39, 39, "macroman"),
    (40, 40, "cp852"),
    (41, 42, "latin7"),
    (43, 43, "macce"),
    (44, 44, "cp1250"),
    (45, 46, "utf8mb4"),
    (47, 49, "latin1"),
    (50, 52, "cp1251"),
    (53, 53, "macroman"),
    (54, 55, "utf16"),
    (56, 56, "utf16le"),
    (57, 57, "cp1256"),
    (58, 59, "cp1257"),
    (60, 61, "utf32"),
    (62, 62, "utf16le"),
    (63, 63, "binary"),
    (64, 64, "armscii8"),
    (65, 65, "ascii"),
    (66, 66, "cp1250"),
    (67, 67, "cp1256"),
    (68, 68, "cp866"),
    (69, 69, "dec8"),
    (70, 70, "greek"),
    (71, 71, "hebrew"),
    (72, 72, "hp8"),
    (73, 73, "keybcs2"),
    (74, 74, "koi8r"),
    (75, 75, "koi8u"),
    (77, 77, "latin2"),
    (78, 78, "latin5"),
    (79, 79, "latin7"),
    (80, 80, "cp850"),
    (81, 81, "cp852"),
    (82, 82, "swe7"),
    (83, 83, "utf8mb3"),
    (84, 84, "big5"),
    (85, 85, "euckr"),
    (86, 86, "gb2312"),
    (87, 87, "gbk"),
    (88, 88, "sjis"),
    (89, 89, "tis620"),
    (90, 90, "ucs2"),
    (91, 91, "ujis"),
    (92, 93, "geostd8"),
    (94, 94, "latin1"),
    (95, 96, "cp932"),
    (97, 98, "eucjpms"),
    (99, 99, "cp1250"),
    (101, 124, "utf16"),
    (128, 151, "ucs2"),
    (159, 159, "ucs2"),
    (160, 183, "utf32"),
    (192, 215, "utf8mb3"),
    (223, 223, "utf8mb3"),
    (224, 247, "utf8mb4"),
    (255, 271, "utf8mb4"),
    (273, 275, "utf8mb4"),
    (277, 294, "utf8mb4"),
    (296, 298, "utf8mb4"),
    (300, 300, "utf8mb4"),
    (305, 305, "utf8mb4"),
    (309, 309, "utf8mb4"),
    (576, 579, "utf8mb3"),
    (608, 611, "utf8mb4"),
    (640, 642, "ucs2"),
    (672, 674, "utf16"),
    (736, 738, "utf32"),
    (1025, 1025, "big5"),
    (1027, 1027, "dec8"),
    (1028, 1028, "cp850"),
    (1030, 1030, "hp8"),
    (1031, 1031, "koi8r"),
    (1032, 1032, "latin1"),
    (1033, 1033, "latin2"),
    (1034, 1034, "swe7"),
    (1035, 1035, "ascii"),
    (1036, 1036, "ujis"),
    (1037, 1037, "sjis"),
    (1040, 1040, "hebrew"),
    (1042, 1042, "tis620"),
    (1043, 1043, "euckr"),
    (1046, 1046, "koi8u"),
    (1048, 1048, "gb2312"),
    (1049, 1049, "greek"),
    (1050, 1050, "cp1250"),
    (1052, 1052, "gbk"),
    (1054, 1054, "latin5"),
    (1056, 1056, "armscii8"),
    (1057, 1057, "utf8mb3"),
    (1059, 1059, "ucs2"),
    (1060, 1060, "cp866"),
    (1061, 1061, "keybcs2"),
    (1062, 1062, "macce"),
    (1063, 1063, "macroman"),
    (1064, 1064, "cp852"),
    (1065, 1065, "latin7"),
    (1067, 1067, "macce"),
    (1069, 1070, "utf8mb4"),
    (1071, 1071, "latin1"),
    (1074, 1075, "cp1251"),
    (1077, 1077, "macroman"),
    (1078, 1079, "utf16"),
    (1080, 1080, "utf16le"),
    (1081, 1081, "cp1256"),
    (1082, 1083, "cp1257"),
    (1084, 1085, "utf32"),
    (1086, 1086, "utf16le"),
    (1088, 1088, "armscii8"),
    (1089, 1089, "ascii"),
    (1090, 1090, "cp1250"),
    (1091, 1091, "cp1256"),
    (1092, 1092, "cp866"),
    (1093, 1093, "dec8"),
    (1094, 1094, "greek"),
    (1095, 1095, "hebrew"),
    (1096, 1096, "hp8"),
    (1097, 1097, "keybcs2"),
    (1098, 1098, "koi8r"),
    (1099, 1099, "koi8u"),
    (1101, 1101, "latin2"),
    (1102, 1102, "latin5"),
    (1103, 1103, "latin7"),
    (1104, 1104, "cp850"),
    (1105, 1105, "cp852"),
    (1106, 1106, "swe7"),
    (1107, 1107, "utf8mb3"),
    (1108, 1108, "big5"),
    (1109, 1109, "euckr"),
    (1110, 1110, "gb2312"),
    (1111, 1111, "gbk"),
    (1112, 1112, "sjis"),
    (1113, 1113, "tis620"),
    (1114, 1114, "ucs2"),
    (1115, 1115, "ujis"),
    (1116, 1117, "geostd8"),
    (1119, 1120, "cp932"),
    (1121, 1122, "eucjpms"),
    (1125, 1125, "utf16"),
    (1147, 1147, "utf16"),
    (1152, 1152, "ucs2"),
    (1174, 1174, "ucs2"),
    (1184, 1184, "utf32"),
    (1206, 1206, "utf32"),
    (1216, 1216, "utf8mb3"),
    (1238, 1238, "utf8mb3"),
    (1248, 1248, "utf8mb4"),
    (1270, 1270, "utf8mb4"),
    (2048, 2215, "utf8mb3"),
    (2232, 2247, "utf8mb3"),
    (2304, 2471, "utf8mb4"),
    (2488, 2503, "utf8mb4"),
    (2560, 2727, "ucs2"),
    (2744, 2759, "ucs2"),
    (2816, 2983, "utf16"),
    (3000, 3015, "utf16"),
    (3072, 3239, "utf32"),
    (3256, 3271, "utf32"),
];

/// A multi-byte CJK charset: MariaDB's rule for how many bytes a character
/// takes (by its first byte), the WHATWG encoding whose mapping it shares
/// for most characters, and the characters where MariaDB's table differs
/// from that encoding's (`charset_cjk.rs`, generated from the server by
/// `tests/charsets.rs`).
#[derive(Debug, PartialEq, Eq)]
struct Cjk {
    encoding: &'static Encoding,
    width: Width,
    /// Sorted runs `(first code, last code, first character)`: the code
    /// `first + k` (a character's bytes as a big-endian number) is the
    /// character `first character + k`, or no character when that is
    /// [`cjk::INVALID`].
    overrides: &'static [(u32, u32, u32)],
}

/// How many bytes a character takes, by its first byte (MariaDB's
/// `mbcharlen` of each charset); any other byte stands alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// big5: 0xA1..=0xF9 lead a 2-byte character.
    Big5,
    /// gbk, euckr: 0x81..=0xFE lead.
    Lead81,
    /// gb2312: 0xA1..=0xF7 lead.
    Gb2312,
    /// sjis, cp932: 0x81..=0x9F and 0xE0..=0xFC lead.
    Sjis,
    /// ujis, eucjpms: 0x8E and 0xA1..=0xFE lead 2 bytes, 0x8F 3.
    EucJp,
}

impl Width {
    fn of(self, first: u8) -> usize {
        match (self, first) {
            (_, 0..=0x7f) => 1,
            (Width::Big5, 0xa1..=0xf9)
            | (Width::Lead81, 0x81..=0xfe)
            | (Width::Gb2312, 0xa1..=0xf7)
            | (Width::Sjis, 0x81..=0x9f | 0xe0..=0xfc)
            | (Width::EucJp, 0x8e | 0xa1..=0xfe) => 2,
            (Width::EucJp, 0x8f) => 3,
            _ => 1,
        }
    }
}

impl Cjk {
    fn decode(&self, bytes: &[u8]) -> Decoded {
        let mut out = String::with_capacity(bytes.len() * 3 / 2);
        let mut at = 0;
        while let Some(&first) = bytes.get(at) {
            if first.is_ascii() {
                // ASCII in all of them (sjis' 0x5C and 0x7E included, as
                // MariaDB maps them).
                out.push(char::from(first));
                at += 1;
                continue;
            }
            let width = self.width.of(first);
            let char_bytes = bytes.get(at..at + width).ok_or(at)?;
            out.push(self.char(char_bytes).ok_or(at)?);
            at += width;
        }
        Ok(out)
    }

    /// The one character `bytes` encode, or `None`.
    fn char(&self, bytes: &[u8]) -> Option<char> {
        let code = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let run = self.overrides.partition_point(|(_, last, _)| *last < code);
        if let Some(&(first, _, target)) = self.overrides.get(run).filter(|r| r.0 <= code) {
            return if target == cjk::INVALID {
                None
            } else {
                char::from_u32(target + (code - first))
            };
        }
        let text = whatwg(self.encoding, bytes).ok()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
}

/// The decoding `tests/charsets.rs` generates `charset_cjk.rs` from: one
/// character of a CJK charset by its WHATWG encoding alone, before
/// MariaDB's differences. `None` for other charsets or for `bytes` that are
/// not one character by the charset's width rule.
#[doc(hidden)]
pub fn cjk_whatwg_reference(charset: &str, bytes: &[u8]) -> Option<Option<char>> {
    let Some(Legacy {
        decoder: Decoder::Cjk(cjk),
        ..
    }) = LEGACY.iter().find(|l| l.name == charset)
    else {
        return None;
    };
    let first = *bytes.first()?;
    if first.is_ascii() || cjk.width.of(first) != bytes.len() {
        return None;
    }
    let probe = Cjk {
        overrides: &[],
        ..*cjk
    };
    Some(probe.char(bytes))
}

const fn cjk_of(
    encoding: &'static Encoding,
    width: Width,
    overrides: &'static [(u32, u32, u32)],
) -> Decoder {
    Decoder::Cjk(Cjk {
        encoding,
        width,
        overrides,
    })
}

/// MariaDB's charsets other than utf8mb3/utf8mb4, ascii, latin1 and binary,
/// and how each is decoded. `tests/charsets.rs` compares every one with the
/// server's `CONVERT(… USING utf8mb4)`:
///
/// - WHATWG single-byte encodings equal to MariaDB's table on all 256
///   bytes: latin2 (ISO-8859-2), latin7 (ISO-8859-13), koi8r (KOI8-R),
///   macroman (macintosh).
/// - MariaDB's own tables (`charset_tables.rs`), where WHATWG has no such
///   encoding (armscii8, cp850, cp852, dec8, geostd8, hp8, keybcs2, macce,
///   swe7) or its nearest one differs: cp1250, cp1251, cp1257 (MariaDB
///   leaves the bytes Windows leaves unassigned undefined; WHATWG maps them
///   to C1 controls), cp1256 (8 bytes MariaDB leaves undefined), cp866
///   (0xFC, 0xFD), greek (0xA1, 0xA2, 0xA4, 0xA5, 0xAA vs ISO-8859-7:2003),
///   hebrew (0xAF), koi8u (0x95, 0xAE, 0xBE), latin5 (ISO-8859-9 with C1
///   controls; WHATWG decodes it as windows-1254), tis620 (C1 controls
///   where WHATWG's windows-874 has Windows punctuation; 0xA0, 0xDB–0xDE,
///   0xFC–0xFF, which MariaDB converts to U+FFFD, are refused).
/// - CJK: MariaDB's character widths, the WHATWG mapping, and MariaDB's
///   differences as generated overrides: big5 (Big5; WHATWG's is
///   Big5-HKSCS: its HKSCS and ETEN extensions are refused, ~270 characters
///   differ), sjis (Shift_JIS; WHATWG's is Windows-31J: NEC/IBM rows and
///   the user area are refused, 7 characters differ, e.g. 0x815F is `\`
///   not `＼`), cp932 (Shift_JIS as WHATWG's, but 0x80 is refused), ujis
///   and eucjpms (EUC-JP, with MariaDB's user-defined rows 0xF5–0xFE as
///   private use and its JIS X 0212 table), euckr (EUC-KR), gb2312 and gbk
///   (GBK; gb2312 refuses everything outside GB 2312, both refuse 0x80 and
///   the user areas).
/// - Unicode: ucs2 (UCS-2 BE), utf16 (UTF-16 BE), utf16le, utf32 (UTF-32
///   BE), decoded here. Lone surrogates, which MariaDB stores in ucs2,
///   utf32 and (as 3-byte sequences) utf8mb3/utf8mb4 and converts to
///   CESU-style bytes, are refused: UTF-8 and JSON text cannot hold them.
pub static LEGACY: &[Legacy] = &[
    Legacy {
        name: "armscii8",
        decoder: Decoder::Table(&tables::ARMSCII8),
    },
    Legacy {
        name: "big5",
        decoder: cjk_of(encoding_rs::BIG5, Width::Big5, cjk::BIG5),
    },
    Legacy {
        name: "cp1250",
        decoder: Decoder::Table(&tables::CP1250),
    },
    Legacy {
        name: "cp1251",
        decoder: Decoder::Table(&tables::CP1251),
    },
    Legacy {
        name: "cp1256",
        decoder: Decoder::Table(&tables::CP1256),
    },
    Legacy {
        name: "cp1257",
        decoder: Decoder::Table(&tables::CP1257),
    },
    Legacy {
        name: "cp850",
        decoder: Decoder::Table(&tables::CP850),
    },
    Legacy {
        name: "cp852",
        decoder: Decoder::Table(&tables::CP852),
    },
    Legacy {
        name: "cp866",
        decoder: Decoder::Table(&tables::CP866),
    },
    Legacy {
        name: "cp932",
        decoder: cjk_of(encoding_rs::SHIFT_JIS, Width::Sjis, cjk::CP932),
    },
    Legacy {
        name: "dec8",
        decoder: Decoder::Table(&tables::DEC8),
    },
    Legacy {
        name: "eucjpms",
        decoder: cjk_of(encoding_rs::EUC_JP, Width::EucJp, cjk::EUCJPMS),
    },
    Legacy {
        name: "euckr",
        decoder: cjk_of(encoding_rs::EUC_KR, Width::Lead81, cjk::EUCKR),
    },
    Legacy {
        name: "gb2312",
        decoder: cjk_of(encoding_rs::GBK, Width::Gb2312, cjk::GB2312),
    },
    Legacy {
        name: "gbk",
        decoder: cjk_of(encoding_rs::GBK, Width::Lead81, cjk::GBK),
    },
    Legacy {
        name: "geostd8",
        decoder: Decoder::Table(&tables::GEOSTD8),
    },
    Legacy {
        name: "greek",
        decoder: Decoder::Table(&tables::GREEK),
    },
    Legacy {
        name: "hebrew",
        decoder: Decoder::Table(&tables::HEBREW),
    },
    Legacy {
        name: "hp8",
        decoder: Decoder::Table(&tables::HP8),
    },
    Legacy {
        name: "keybcs2",
        decoder: Decoder::Table(&tables::KEYBCS2),
    },
    Legacy {
        name: "koi8r",
        decoder: Decoder::Whatwg(encoding_rs::KOI8_R),
    },
    Legacy {
        name: "koi8u",
        decoder: Decoder::Table(&tables::KOI8U),
    },
    Legacy {
        name: "latin2",
        decoder: Decoder::Whatwg(encoding_rs::ISO_8859_2),
    },
    Legacy {
        name: "latin5",
        decoder: Decoder::Table(&tables::LATIN5),
    },
    Legacy {
        name: "latin7",
        decoder: Decoder::Whatwg(encoding_rs::ISO_8859_13),
    },
    Legacy {
        name: "macce",
        decoder: Decoder::Table(&tables::MACCE),
    },
    Legacy {
        name: "macroman",
        decoder: Decoder::Whatwg(encoding_rs::MACINTOSH),
    },
    Legacy {
        name: "sjis",
        decoder: cjk_of(encoding_rs::SHIFT_JIS, Width::Sjis, cjk::SJIS),
    },
    Legacy {
        name: "swe7",
        decoder: Decoder::Table(&tables::SWE7),
    },
    Legacy {
        name: "tis620",
        decoder: Decoder::Table(&tables::TIS620),
    },
    Legacy {
        name: "ucs2",
        decoder: Decoder::Ucs2,
    },
    Legacy {
        name: "ujis",
        decoder: cjk_of(encoding_rs::EUC_JP, Width::EucJp, cjk::UJIS),
    },
    Legacy {
        name: "utf16",
        decoder: Decoder::Utf16Be,
    },
    Legacy {
        name: "utf16le",
        decoder: Decoder::Utf16Le,
    },
    Legacy {
        name: "utf32",
        decoder: Decoder::Utf32,
    },
];
