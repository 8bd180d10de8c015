//! A value read by SQL → the [`Value`] the binlog decoder gives for the same
//! stored value, so that a snapshot row and an inserted row of the same
//! content map to the same `data`.
//!
//! The rows are read with the binary protocol (a prepared statement):
//! integers, FLOAT, DOUBLE and the temporal types arrive as numbers, not
//! text, so nothing is rounded; DECIMAL arrives as its exact text. The
//! session sets `character_set_results = NULL`, so character columns arrive
//! in their own character set and are decoded by the decoder's own
//! function; `time_zone = '+00:00'`, so a TIMESTAMP arrives as its UTC
//! wall-clock time. UUID, INET6 and INET4 arrive as their text forms and are
//! turned back into the bytes the binlog holds.

use mysql_async::Value as Sql;

use crate::decode::{decode_text, Charset, Value};
use crate::map::uuid_from_record;

/// How one column's values are turned into decoded values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Int {
        unsigned: bool,
    },
    Decimal,
    Float,
    Double,
    Bit {
        bits: u16,
    },
    Year,
    Date,
    Time {
        fsp: u8,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Text(Charset),
    Enum(Charset),
    Set(Charset),
    /// BINARY (`pad_to` its length), VARBINARY, BLOBs, spatial types.
    Bytes {
        pad_to: usize,
    },
    Uuid,
    Inet6,
    Inet4,
}

/// One column as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub data_type: String,
    pub column_type: String,
    pub numeric_precision: Option<u64>,
    pub datetime_precision: Option<u64>,
    pub character_set: Option<String>,
    pub octet_length: Option<u64>,
}

impl Kind {
    /// The kind of a column, from its description.
    ///
    /// # Errors
    /// A type the snapshot cannot read exactly, named.
    pub fn of(d: &Described) -> Result<Kind, String> {
        let fsp = || u8::try_from(d.datetime_precision.unwrap_or(0).min(6)).unwrap_or(0);
        let charset = || {
            d.character_set
                .as_deref()
                .map_or(Charset::Binary, Charset::from_name)
        };
        let data_type = d.data_type.to_ascii_lowercase();
        Ok(match data_type.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Int {
                unsigned: d.column_type.to_ascii_lowercase().contains("unsigned"),
            },
            "decimal" | "numeric" => Kind::Decimal,
            "float" => Kind::Float,
            "double" | "real" => Kind::Double,
            "bit" => Kind::Bit {
                bits: u16::try_from(d.numeric_precision.unwrap_or(1)).unwrap_or(64),
            },
            "year" => Kind::Year,
            "date" => Kind::Date,
            "time" => Kind::Time { fsp: fsp() },
            "datetime" => Kind::DateTime { fsp: fsp() },
            "timestamp" => Kind::Timestamp { fsp: fsp() },
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json" => {
                match charset() {
                    Charset::Binary => Kind::Bytes { pad_to: 0 },
                    other => Kind::Text(other),
                }
            }
            "enum" => Kind::Enum(charset()),
            "set" => Kind::Set(charset()),
            "binary" => Kind::Bytes {
                pad_to: usize::try_from(d.octet_length.unwrap_or(0)).unwrap_or(0),
            },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry"
            | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" => Kind::Bytes { pad_to: 0 },
            "uuid" => Kind::Uuid,
            "inet6" => Kind::Inet6,
            "inet4" => Kind::Inet4,
            other => {
                return Err(format!(
                    "type {other} ({}) is not one the snapshot reads",
                    d.column_type
                ))
            }
        })
    }
}

/// The decoded value of `sql` for a column of `kind`.
///
/// # Errors
/// A value that does not fit its column's kind, described.
pub fn convert(kind: &Kind, sql: Sql) -> Result<Value, String> {
    if sql == Sql::NULL {
        return Ok(Value::Null);
    }
    let wrong = |sql: &Sql| format!("unexpected value {sql:?} for a {kind:?} column");
    Ok(match kind {
        Kind::Int { unsigned } => {
            let wide: i128 = match &sql {
                Sql::Int(i) => i128::from(*i),
                Sql::UInt(u) => i128::from(*u),
                Sql::Bytes(b) => text(b)?.parse().map_err(|_| wrong(&sql))?,
                _ => return Err(wrong(&sql)),
            };
            if *unsigned {
                Value::UInt(u64::try_from(wide).map_err(|_| wrong(&sql))?)
            } else {
                Value::Int(i64::try_from(wide).map_err(|_| wrong(&sql))?)
            }
        }
        Kind::Decimal => match &sql {
            Sql::Bytes(b) => Value::Decimal(text(b)?.to_owned()),
            _ => return Err(wrong(&sql)),
        },
        Kind::Float => match sql {
            Sql::Float(f) => Value::Float(f),
            Sql::Double(d) => Value::Float(d as f32),
            other => return Err(wrong(&other)),
        },
        Kind::Double => match sql {
            Sql::Double(d) => Value::Double(d),
            Sql::Float(f) => Value::Double(f64::from(f)),
            other => return Err(wrong(&other)),
        },
        Kind::Bit { bits } => match &sql {
            Sql::Bytes(b) if b.len() <= 8 => Value::Bit {
                bits: *bits,
                value: b.iter().fold(0u64, |v, byte| (v << 8) | u64::from(*byte)),
            },
            Sql::Int(i) => Value::Bit {
                bits: *bits,
                value: u64::try_from(*i).map_err(|_| wrong(&sql))?,
            },
            Sql::UInt(u) => Value::Bit {
                bits: *bits,
                value: *u,
            },
            _ => return Err(wrong(&sql)),
        },
        Kind::Year => match &sql {
            Sql::Int(i) => Value::Year(u16::try_from(*i).map_err(|_| wrong(&sql))?),
            Sql::UInt(u) => Value::Year(u16::try_from(*u).map_err(|_| wrong(&sql))?),
            _ => return Err(wrong(&sql)),
        },
        Kind::Date => match sql {
            Sql::Date(year, month, day, ..) => Value::Date { year, month, day },
            other => return Err(wrong(&other)),
        },
        Kind::Time { fsp } => match sql {
            Sql::Time(negative, days, hours, minutes, seconds, micros) => Value::Time {
                negative,
                hours: days * 24 + u32::from(hours),
                minutes,
                seconds,
                micros,
                fsp: *fsp,
            },
            other => return Err(wrong(&other)),
        },
        Kind::DateTime { fsp } => match sql {
            Sql::Date(year, month, day, hour, minute, second, micros) => Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
                fsp: *fsp,
            },
            other => return Err(wrong(&other)),
        },
        Kind::Timestamp { fsp } => match sql {
            Sql::Date(0, 0, 0, 0, 0, 0, 0) => Value::Timestamp {
                seconds: 0,
                micros: 0,
                fsp: *fsp,
            },
            Sql::Date(year, month, day, hour, minute, second, micros) => {
                let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
                let unix = days * 86_400
                    + i64::from(hour) * 3_600
                    + i64::from(minute) * 60
                    + i64::from(second);
                Value::Timestamp {
                    seconds: u32::try_from(unix)
                        .map_err(|_| format!("TIMESTAMP {unix} is out of range"))?,
                    micros,
                    fsp: *fsp,
                }
            }
            other => return Err(wrong(&other)),
        },
        Kind::Text(charset) => match &sql {
            Sql::Bytes(b) => Value::Text(decode_text(b, Some(charset)).map_err(|e| e.to_string())?),
            _ => return Err(wrong(&sql)),
        },
        Kind::Enum(charset) => match &sql {
            Sql::Bytes(b) => Value::Enum(decode_text(b, Some(charset)).map_err(|e| e.to_string())?),
            _ => return Err(wrong(&sql)),
        },
        Kind::Set(charset) => match &sql {
            Sql::Bytes(b) if b.is_empty() => Value::Set(Vec::new()),
            Sql::Bytes(b) => Value::Set(
                b.split(|&c| c == b',')
                    .map(|label| decode_text(label, Some(charset)).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(wrong(&sql)),
        },
        Kind::Bytes { pad_to } => match sql {
            Sql::Bytes(mut b) => {
                if b.len() < *pad_to {
                    b.resize(*pad_to, 0);
                }
                Value::Bytes(b)
            }
            other => return Err(wrong(&other)),
        },
        Kind::Uuid => match &sql {
            Sql::Bytes(b) => Value::Bytes(uuid_record(text(b)?)?.to_vec()),
            _ => return Err(wrong(&sql)),
        },
        Kind::Inet6 => match &sql {
            Sql::Bytes(b) => {
                let addr: std::net::Ipv6Addr = text(b)?
                    .parse()
                    .map_err(|_| format!("INET6 value {:?} does not parse", text(b)))?;
                Value::Bytes(addr.octets().to_vec())
            }
            _ => return Err(wrong(&sql)),
        },
        Kind::Inet4 => match &sql {
            Sql::Bytes(b) => {
                let addr: std::net::Ipv4Addr = text(b)?
                    .parse()
                    .map_err(|_| format!("INET4 value {:?} does not parse", text(b)))?;
                Value::Bytes(addr.octets().to_vec())
            }
            _ => return Err(wrong(&sql)),
        },
    })
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{bytes:?} is not ASCII text"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The 16 bytes a UUID column stores (and the binlog carries) for its text
/// form: the text's bytes, or those with the groups swapped the way
/// MariaDB stores time-ordered UUIDs; the one [`uuid_from_record`] maps
/// back to the text.
fn uuid_record(text: &str) -> Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("UUID value {text:?} is not 32 hex digits"));
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .map_err(|_| format!("UUID value {text:?} is not hexadecimal"))?;
    }
    // (position in the text form, position in the record, length)
    const GROUPS: [(usize, usize, usize); 5] =
        [(0, 12, 4), (4, 10, 2), (6, 8, 2), (8, 6, 2), (10, 0, 6)];
    let mut swapped = [0u8; 16];
    for (mem, rec, len) in GROUPS {
        swapped[rec..rec + len].copy_from_slice(&bytes[mem..mem + len]);
    }
    if uuid_from_record(swapped) == bytes {
        Ok(swapped)
    } else if uuid_from_record(bytes) == bytes {
        Ok(bytes)
    } else {
        Err(format!("UUID value {text:?} has no stored form"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_match_the_unix_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn uuids_round_trip_through_their_stored_form() {
        for text in [
            "123e4567-e89b-12d3-a456-426655440000",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "123e4567-e89b-72d3-a456-426655440000",
        ] {
            let record = uuid_record(text).unwrap();
            let back = uuid_from_record(record);
            let hex: String = back.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, text.replace('-', ""), "{text}");
        }
    }

    #[test]
    fn temporal_values_keep_their_precision() {
        let v = convert(
            &Kind::Timestamp { fsp: 6 },
            Sql::Date(2038, 1, 19, 3, 14, 7, 999_999),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Timestamp {
                seconds: 2_147_483_647,
                micros: 999_999,
                fsp: 6
            }
        );
        let v = convert(&Kind::Time { fsp: 0 }, Sql::Time(true, 34, 22, 59, 59, 0)).unwrap();
        assert!(matches!(
            v,
            Value::Time {
                hours: 838,
                negative: true,
                ..
            }
        ));
        assert_eq!(
            convert(&Kind::Set(Charset::Utf8), Sql::Bytes(b"red,blue".to_vec())).unwrap(),
            Value::Set(vec!["red".into(), "blue".into()])
        );
        assert!(convert(&Kind::Int { unsigned: true }, Sql::Int(-1)).is_err());
    }
}
