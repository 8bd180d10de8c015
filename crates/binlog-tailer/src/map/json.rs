//! JSON column text → the compact form serde_json writes for it, without
//! building a `serde_json::Value`: the event bytes stay those of parsing the
//! column into a value and serialising that (the tests compare the two on
//! every shape), at a fraction of the allocations.
//!
//! The one document this cannot copy straight through is an object with a
//! repeated key: a value keeps the last member's value at the first one's
//! place (MariaDB's JSON type allows such documents). [`compact`] says so
//! and the caller goes through a value.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Why [`compact`] gave no text.
#[derive(Debug)]
pub enum NotCopied {
    /// An object repeats a key: go through a value.
    RepeatedKey,
    /// Not a JSON document.
    Invalid,
}

/// Appends `text`'s compact form to `out` (on an error, `out` may hold part
/// of it; the caller discards it).
pub fn compact(text: &str, out: &mut Vec<u8>) -> Result<(), NotCopied> {
    let repeated = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Writer {
        out: &mut *out,
        repeated: &repeated,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(_) if repeated.get() => Err(NotCopied::RepeatedKey),
        Err(_) => Err(NotCopied::Invalid),
    }
}

/// Writes what it reads.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    repeated: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Writer<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Writes a string as serde_json does (its escaping).
fn string<E: de::Error>(out: &mut Vec<u8>, s: &str) -> Result<(), E> {
    serde_json::to_writer(out, s).map_err(E::custom)
}

impl<'de> Visitor<'de> for Writer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // The parser gives only finite numbers; serde_json writes them as a
        // value's number would be written.
        serde_json::to_writer(&mut *self.out, &v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        string(self.out, v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let element = Writer {
                out: &mut *self.out,
                repeated: self.repeated,
            };
            if seq.next_element_seed(element)?.is_none() {
                // No further element: take the separator back.
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut keys = Keys::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !keys.is_empty() {
                self.out.push(b',');
            }
            string(self.out, &key)?;
            if !keys.insert(key) {
                self.repeated.set(true);
                return Err(de::Error::custom("an object repeats a key"));
            }
            self.out.push(b':');
            map.next_value_seed(Writer {
                out: &mut *self.out,
                repeated: self.repeated,
            })?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// An object's keys so far: a list while short, a set beyond.
#[derive(Default)]
struct Keys<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    const FEW: usize = 16;

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_none()
    }

    /// Adds `key`; false when it was there already.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the event held before: the column parsed into a value and
    /// written compactly.
    fn through_value(text: &str) -> String {
        serde_json::from_str::<serde_json::Value>(text)
            .expect("valid")
            .to_string()
    }

    fn copied(text: &str) -> Result<String, NotCopied> {
        let mut out = Vec::new();
        compact(text, &mut out)?;
        Ok(String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn every_shape_is_written_as_a_value_would_be() {
        let documents = [
            r#"[{"sku":"bench","qty":1}]"#,
            r#" { "a" : [ 1 , 2.50 , -3 , 1e3 , 1E-7, -0, -0.0, 0.1, 18446744073709551615,
                 -9223372036854775808, 18446744073709551616, 123456789012345678901234567890 ],
                 "b" : { } , "c" : [ ] , "d" : null , "e" : true , "f" : false } "#,
            r#""plain string""#,
            r#""escapes: \" \\ \/ \b \f \n \r \t \u0000 \u001f \u00e9 \u20ac \ud83d\ude00""#,
            "\"raw: é € 😀 \u{7f}\"",
            r#"{"nested":{"deeper":{"deepest":[[[[]]],{}]}},"k\u0041y":"v"}"#,
            "12",
            "-1.5e300",
            "null",
            r#"[1,[2,[3,[4]]],{"x":[{"y":{}}]}]"#,
            r#"{"":"empty key","  ":"spaces"}"#,
        ];
        let many: String = format!(
            "{{{}}}",
            (0..100)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let documents = documents.iter().copied().chain([many.as_str()]);
        for doc in documents {
            assert_eq!(copied(doc).expect(doc), through_value(doc), "{doc}");
        }
    }

    #[test]
    fn a_repeated_key_goes_through_a_value() {
        let many_then_repeat = format!(
            "{{{},\"k3\":0}}",
            (0..40)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"[{"x":{"k":1,"j":2,"k":3}}]"#,
            r#"{"a":1,"\u0061":2}"#,
            many_then_repeat.as_str(),
        ] {
            assert!(matches!(copied(doc), Err(NotCopied::RepeatedKey)), "{doc}");
        }
        // The same key in different objects is no repeat.
        let doc = r#"{"a":{"a":1},"b":{"a":2}}"#;
        assert_eq!(copied(doc).expect(doc), through_value(doc));
    }

    #[test]
    fn what_is_not_json_is_an_error() {
        for doc in ["{nope", "[1,]", "1 2", "", "\"\\ud800\"", "1e400", "[1"] {
            assert!(
                matches!(copied(doc), Err(NotCopied::Invalid)),
                "{doc:?} copied"
            );
            assert!(serde_json::from_str::<serde_json::Value>(doc).is_err());
        }
    }
}
