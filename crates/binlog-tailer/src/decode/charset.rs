//! Character sets: collation ids (as TABLE_MAP metadata carries them) →
//! charset families, and text decoding without replacement characters.

use std::collections::HashMap;

use super::ValueError;

/// Character set family of a column, resolved from its collation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb3 or utf8mb4: validated UTF-8.
    Utf8,
    /// ascii: bytes 0x00..=0x7f only.
    Ascii,
    /// MariaDB's latin1, which is Windows-1252 (cp1252) with the five bytes
    /// cp1252 leaves undefined mapped to the C1 controls.
    Latin1,
    /// binary: bytes, not text.
    Binary,
    /// Any other character set, by name (`"cp1250"`), or `"collation N"`
    /// for an id the map does not know.
    Other(String),
}

impl Charset {
    /// The family of a character set name as `information_schema` spells
    /// it.
    pub fn from_name(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf8mb3" | "utf8" => Charset::Utf8,
            "ascii" => Charset::Ascii,
            "latin1" => Charset::Latin1,
            "binary" => Charset::Binary,
            other => Charset::Other(other.to_owned()),
        }
    }

    /// A name for messages.
    pub fn name(&self) -> &str {
        match self {
            Charset::Utf8 => "utf8",
            Charset::Ascii => "ascii",
            Charset::Latin1 => "latin1",
            Charset::Binary => "binary",
            Charset::Other(name) => name,
        }
    }
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
    match charset {
        None | Some(Charset::Utf8) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(ValueError::InvalidText {
                charset: if charset.is_some() {
                    "utf8"
                } else {
                    "utf8 (no charset metadata)"
                }
                .to_owned(),
                valid_up_to: e.valid_up_to(),
            }),
        },
        Some(Charset::Ascii) => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
            Some(valid_up_to) => Err(ValueError::InvalidText {
                charset: "ascii".to_owned(),
                valid_up_to,
            }),
        },
        Some(Charset::Latin1) => {
            // WHATWG windows-1252 maps every byte (0x81, 0x8d, 0x8f, 0x90,
            // 0x9d to the C1 controls, as MariaDB's latin1 does), so this
            // never fails; the check stays for the day that changes.
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|text| text.into_owned())
                .ok_or_else(|| ValueError::InvalidText {
                    charset: "latin1".to_owned(),
                    valid_up_to: 0,
                })
        }
        Some(Charset::Binary) => Err(ValueError::UnsupportedCharset {
            charset: "binary (as text)".to_owned(),
        }),
        Some(Charset::Other(name)) => Err(ValueError::UnsupportedCharset {
            charset: name.clone(),
        }),
    }
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
