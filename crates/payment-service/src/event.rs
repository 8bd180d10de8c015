//! `OrderCreated` events → what to charge: a pure function of the message
//! payload, so every rule is unit-tested without a broker.
//!
//! # What is checked
//! The payload is the structured-mode CloudEvents 1.0 JSON the tailer
//! publishes (`schemas/order_created.v1.json`). The charge needs, and this
//! module verifies:
//! - `specversion` is `"1.0"` and `type` is [`ORDER_CREATED_TYPE`];
//! - `id` (the event id, the deduplication key) is 1 to
//!   [`MAX_EVENT_ID_LEN`] printable ASCII characters (the column is
//!   `VARCHAR(128) CHARACTER SET ascii`);
//! - `data.id` is a JSON integer from 1 to 2^64−1;
//! - `data.amount` is an exact, non-negative `DECIMAL(12,2)` string
//!   (`^[0-9]{1,10}\.[0-9]{2}$`): it is copied into the `DECIMAL(12,2)`
//!   column as text, never through a float;
//! - `data.currency` is three ASCII upper-case letters.
//!
//! Members the charge does not use are not checked. Anything that fails is
//! an [`Invalid`] whose `Display` is the dead-letter reason.

use serde_json::{Map, Value};

/// The CloudEvents `type` of the events this service charges.
pub const ORDER_CREATED_TYPE: &str = "shop.order.created.v1";
/// The only CloudEvents version understood.
pub const SPEC_VERSION: &str = "1.0";
/// Longest event id (`payments.event_id` is `VARCHAR(128)`).
pub const MAX_EVENT_ID_LEN: usize = 128;
/// Digits before the point in a `DECIMAL(12,2)`.
const AMOUNT_INTEGER_DIGITS: usize = 10;

/// One order to charge, taken from a valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub order_id: u64,
    /// The CloudEvents `id`.
    pub event_id: String,
    /// Exact decimal text, two places (`"250.00"`).
    pub amount: String,
    /// ISO 4217 code (`"USD"`).
    pub currency: String,
    /// A snapshot record (the event has `binlogsnapshot`): the order as it
    /// stood when binlog-tailer read it, not its insert.
    pub snapshot: bool,
}

/// Why an event cannot be processed; its `Display` is the `dlq.reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("no payload (a tombstone or an empty message)")]
    NoPayload,
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("schema mismatch: the payload is not a JSON object")]
    NotObject,
    #[error("wrong event type: type is {found}, expected \"{ORDER_CREATED_TYPE}\"")]
    WrongType { found: String },
    #[error("schema mismatch: {field} {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl Invalid {
    /// A bounded label for the metrics: `no_payload`, `not_json`,
    /// `wrong_type` or `schema`.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalid::NoPayload => "no_payload",
            Invalid::NotJson(_) => "not_json",
            Invalid::WrongType { .. } => "wrong_type",
            Invalid::NotObject | Invalid::Field { .. } => "schema",
        }
    }
}

fn field(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid::Field {
        field,
        problem: problem.into(),
    }
}

/// A short description of a JSON value for messages: its text, cut at 40
/// characters.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a Value, Invalid> {
    object.get(key).ok_or_else(|| field(name, "is missing"))
}

fn string<'a>(value: &'a Value, name: &'static str) -> Result<&'a str, Invalid> {
    value
        .as_str()
        .ok_or_else(|| field(name, format!("must be a string, found {}", kind_of(value))))
}

/// Reads the charge out of a message payload.
///
/// # Errors
/// [`Invalid`] naming the first problem found.
pub fn parse(payload: Option<&[u8]>) -> Result<Charge, Invalid> {
    let payload = match payload {
        Some(p) if !p.is_empty() => p,
        _ => return Err(Invalid::NoPayload),
    };
    let doc: Value =
        serde_json::from_slice(payload).map_err(|e| Invalid::NotJson(e.to_string()))?;
    let Value::Object(event) = &doc else {
        return Err(Invalid::NotObject);
    };

    let spec = required(event, "specversion", "specversion")?;
    if spec.as_str() != Some(SPEC_VERSION) {
        return Err(field(
            "specversion",
            format!("is {}, expected \"{SPEC_VERSION}\"", shown(spec)),
        ));
    }
    let kind = required(event, "type", "type")?;
    if kind.as_str() != Some(ORDER_CREATED_TYPE) {
        return Err(Invalid::WrongType { found: shown(kind) });
    }

    let id = string(required(event, "id", "id")?, "id")?;
    if id.is_empty() || id.len() > MAX_EVENT_ID_LEN {
        return Err(field(
            "id",
            format!("must be 1 to {MAX_EVENT_ID_LEN} characters long"),
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field("id", "must be printable ASCII without spaces"));
    }

    let data = required(event, "data", "data")?;
    let Value::Object(data) = data else {
        return Err(field(
            "data",
            format!("must be an object, found {}", kind_of(data)),
        ));
    };

    let order = required(data, "id", "data.id")?;
    let order_id = match order.as_u64() {
        Some(0) => return Err(field("data.id", "must be at least 1, found 0")),
        Some(n) => n,
        None => {
            return Err(field(
                "data.id",
                format!(
                    "must be an integer from 1 to 18446744073709551615, found {}",
                    shown(order)
                ),
            ))
        }
    };

    let amount = string(required(data, "amount", "data.amount")?, "data.amount")?;
    check_amount(amount)?;

    let currency = string(
        required(data, "currency", "data.currency")?,
        "data.currency",
    )?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(field(
            "data.currency",
            format!("{currency:?} is not an ISO 4217 code (three upper-case letters)"),
        ));
    }

    Ok(Charge {
        order_id,
        event_id: id.to_owned(),
        amount: amount.to_owned(),
        currency: currency.to_owned(),
        snapshot: event.get("binlogsnapshot").is_some_and(Value::is_string),
    })
}

/// `^[0-9]{1,10}\.[0-9]{2}$`, with a clearer message for negative amounts.
fn check_amount(amount: &str) -> Result<(), Invalid> {
    if amount.starts_with('-') {
        return Err(field(
            "data.amount",
            format!("{amount:?} is negative; a payment cannot be"),
        ));
    }
    let well_formed = amount.split_once('.').is_some_and(|(int, frac)| {
        (1..=AMOUNT_INTEGER_DIGITS).contains(&int.len())
            && frac.len() == 2
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
    });
    if well_formed {
        Ok(())
    } else {
        Err(field(
            "data.amount",
            format!(
                "{amount:?} is not a DECIMAL(12,2) amount (1 to {AMOUNT_INTEGER_DIGITS} digits, a point, 2 digits)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An event exactly as the tailer publishes it (README, "The event").
    fn event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "0-1-8572.1",
            "source": "/mariadb/shop/shop/orders",
            "type": "shop.order.created.v1",
            "subject": "11",
            "time": "2026-11-26T05:59:41Z",
            "datacontenttype": "application/json",
            "dataschema": "urn:binlog-tailer:schema:order_created.v1",
            "binloggtid": "0-1-8572", "binlogrow": 1, "binlogserverid": 2,
            "binlogfile": "mariadb-bin.000002", "binlogpos": 5421160,
            "data": {"id": 11, "customer_id": 7, "amount": "250.00", "currency": "USD",
                     "status": "created", "items": [{"sku": "desk", "qty": 1}],
                     "created_at": "2026-11-26 05:59:41.318802"}
        })
    }

    fn parse_json(v: &Value) -> Result<Charge, Invalid> {
        parse(Some(v.to_string().as_bytes()))
    }

    fn with(path: &[&str], value: Option<Value>) -> Value {
        let mut doc = event();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut doc;
        for p in parents {
            target = &mut target[*p];
        }
        let object = target.as_object_mut().unwrap();
        match value {
            Some(v) => {
                object.insert((*last).to_owned(), v);
            }
            None => {
                object.remove(*last);
            }
        }
        doc
    }

    #[test]
    fn the_documented_event_gives_its_charge() {
        assert_eq!(
            parse_json(&event()),
            Ok(Charge {
                order_id: 11,
                event_id: "0-1-8572.1".into(),
                amount: "250.00".into(),
                currency: "USD".into(),
                snapshot: false,
            })
        );
        // A snapshot record: the same charge, marked.
        let mut snapshot = event();
        snapshot["id"] = serde_json::json!("snapshot:0-1-8572@mariadb-bin.000002:4:shop.orders:11");
        snapshot["binlogsnapshot"] = serde_json::json!("00c0ffee00c0ffee");
        assert!(parse_json(&snapshot).is_ok_and(|c| c.snapshot && c.order_id == 11));
    }

    #[test]
    fn amounts_are_kept_as_exact_text() {
        for amount in ["0.00", "0.01", "19.99", "1234567890.00", "9999999999.99"] {
            let charge = parse_json(&with(&["data", "amount"], Some(json!(amount)))).unwrap();
            assert_eq!(charge.amount, amount);
        }
        let charge = parse_json(&with(&["data", "id"], Some(json!(u64::MAX)))).unwrap();
        assert_eq!(charge.order_id, u64::MAX);
    }

    #[test]
    fn bad_amounts_are_refused() {
        for amount in [
            json!("-5.00"),
            json!("12.5"),
            json!("12"),
            json!("12.500"),
            json!(".50"),
            json!("12345678901.00"),
            json!("1e3.00"),
            json!(" 1.00"),
            json!("１.00"),
            json!(12.5),
            json!(null),
        ] {
            let err = parse_json(&with(&["data", "amount"], Some(amount.clone()))).unwrap_err();
            assert_eq!(err.kind(), "schema", "{amount}");
            assert!(err.to_string().contains("data.amount"), "{err}");
        }
        let err = parse_json(&with(&["data", "amount"], Some(json!("-5.00")))).unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }

    #[test]
    fn each_problem_is_named() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                with(&["type"], Some(json!("shop.order.cancelled.v1"))),
                "wrong_type",
                "shop.order.cancelled.v1",
            ),
            (with(&["type"], None), "schema", "type is missing"),
            (
                with(&["specversion"], Some(json!("0.3"))),
                "schema",
                "specversion",
            ),
            (with(&["id"], None), "schema", "id is missing"),
            (
                with(&["id"], Some(json!(42))),
                "schema",
                "id must be a string",
            ),
            (
                with(&["id"], Some(json!(""))),
                "schema",
                "id must be 1 to 128",
            ),
            (
                with(&["id"], Some(json!("x".repeat(129)))),
                "schema",
                "id must be 1 to 128",
            ),
            (
                with(&["id"], Some(json!("a b"))),
                "schema",
                "printable ASCII",
            ),
            (with(&["data"], None), "schema", "data is missing"),
            (
                with(&["data"], Some(json!([1]))),
                "schema",
                "data must be an object",
            ),
            (with(&["data", "id"], None), "schema", "data.id is missing"),
            (
                with(&["data", "id"], Some(json!("11"))),
                "schema",
                "data.id must be an integer",
            ),
            (
                with(&["data", "id"], Some(json!(-1))),
                "schema",
                "data.id must be an integer",
            ),
            (
                with(&["data", "id"], Some(json!(1.5))),
                "schema",
                "data.id must be an integer",
            ),
            (
                with(&["data", "id"], Some(json!(0))),
                "schema",
                "at least 1",
            ),
            (
                with(&["data", "amount"], None),
                "schema",
                "data.amount is missing",
            ),
            (
                with(&["data", "currency"], None),
                "schema",
                "data.currency is missing",
            ),
            (
                with(&["data", "currency"], Some(json!("usd"))),
                "schema",
                "ISO 4217",
            ),
            (
                with(&["data", "currency"], Some(json!("EURO"))),
                "schema",
                "ISO 4217",
            ),
        ];
        for (doc, kind, needle) in cases {
            let err = parse_json(&doc).unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
            assert!(err.to_string().contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn non_json_and_empty_payloads_are_refused() {
        assert_eq!(parse(None), Err(Invalid::NoPayload));
        assert_eq!(parse(Some(b"")), Err(Invalid::NoPayload));
        assert_eq!(parse(Some(b"{not json")).unwrap_err().kind(), "not_json");
        assert_eq!(parse(Some(&[0xff, 0xfe])).unwrap_err().kind(), "not_json");
        assert_eq!(parse(Some(b"[1,2]")), Err(Invalid::NotObject));
        assert_eq!(parse(Some(b"\"text\"")), Err(Invalid::NotObject));
    }
}
