//! Validation of `POST /orders` bodies: pure, so every rule is unit-tested
//! without a server. Each refusal names the field and what is wrong with it.

use serde_json::Value as Json;

/// Largest accepted request body, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most items in one order.
pub const MAX_ITEMS: usize = 100;
/// Most of one item.
pub const MAX_QTY: u64 = 10_000;

/// A validated order, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: u64,
    /// Canonical decimal text with two decimals, e.g. `19.90`.
    pub amount: String,
    pub currency: String,
    /// The items as compact JSON text.
    pub items: String,
}

/// Why a body was refused: the field (empty for the body as a whole) and
/// the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

impl Invalid {
    fn new(field: &str, problem: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

/// ISO 4217 codes of the currencies in use.
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
];

/// Validates a parsed request body.
///
/// # Errors
/// The first problem found, naming its field.
pub fn validate(body: &Json) -> Result<NewOrder, Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))?;
    const FIELDS: [&str; 4] = ["customer_id", "amount", "currency", "items"];
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Invalid::new(
            unknown,
            format!("unknown field; expected only {}", FIELDS.join(", ")),
        ));
    }
    let customer_id = match obj.get("customer_id") {
        None => return Err(Invalid::new("customer_id", "is required")),
        Some(v) => v
            .as_u64()
            .filter(|&id| id > 0)
            .ok_or_else(|| Invalid::new("customer_id", "must be a positive integer"))?,
    };
    let amount =
        match obj.get("amount") {
            None => return Err(Invalid::new("amount", "is required")),
            Some(Json::String(s)) => parse_amount(s)?,
            Some(_) => return Err(Invalid::new(
                "amount",
                "must be a decimal string such as \"19.99\" (not a JSON number: money stays exact)",
            )),
        };
    let currency = match obj.get("currency") {
        None => return Err(Invalid::new("currency", "is required")),
        Some(Json::String(s)) if CURRENCIES.contains(&s.as_str()) => s.clone(),
        Some(Json::String(s)) => {
            return Err(Invalid::new(
                "currency",
                format!("{s:?} is not an ISO 4217 currency code (e.g. EUR, USD, JPY)"),
            ))
        }
        Some(_) => return Err(Invalid::new("currency", "must be a string such as \"EUR\"")),
    };
    let items = match obj.get("items") {
        None => return Err(Invalid::new("items", "is required")),
        Some(Json::Array(items)) => items,
        Some(_) => return Err(Invalid::new("items", "must be an array of {sku, qty}")),
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "items",
            format!("must hold between 1 and {MAX_ITEMS} items"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("items[{i}].{name}");
        let item = item
            .as_object()
            .ok_or_else(|| Invalid::new(&format!("items[{i}]"), "must be an object {sku, qty}"))?;
        if let Some(unknown) = item.keys().find(|k| *k != "sku" && *k != "qty") {
            return Err(Invalid::new(
                &field(unknown),
                "unknown field; expected sku and qty",
            ));
        }
        match item.get("sku") {
            Some(Json::String(s)) if !s.trim().is_empty() && s.len() <= 64 => {}
            _ => {
                return Err(Invalid::new(
                    &field("sku"),
                    "must be a non-empty string of at most 64 bytes",
                ))
            }
        }
        match item.get("qty").and_then(Json::as_u64) {
            Some(q) if (1..=MAX_QTY).contains(&q) => {}
            _ => {
                return Err(Invalid::new(
                    &field("qty"),
                    format!("must be an integer from 1 to {MAX_QTY}"),
                ))
            }
        }
    }
    Ok(NewOrder {
        customer_id,
        amount,
        currency,
        items: Json::Array(items.clone()).to_string(),
    })
}

/// `"19.9"` → `"19.90"`; refuses negatives, zero, more than two decimals,
/// more than ten integer digits (DECIMAL(12,2)), and anything not a plain
/// decimal.
fn parse_amount(text: &str) -> Result<String, Invalid> {
    let bad = |problem: &str| Invalid::new("amount", format!("{text:?}: {problem}"));
    if text.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "must be digits with an optional . and up to two decimals",
        ));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && frac.is_empty()) {
        return Err(bad(
            "must be digits with an optional . and up to two decimals",
        ));
    }
    if frac.len() > 2 {
        return Err(bad("has more than two decimals"));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int.len() > 10 {
        return Err(bad("is too large (at most 9999999999.99)"));
    }
    let canonical = format!("{int}.{frac:0<2}");
    if canonical == "0.00" {
        return Err(bad("must be more than zero"));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(patch: Json) -> Json {
        let mut base = json!({
            "customer_id": 7,
            "amount": "19.9",
            "currency": "EUR",
            "items": [{"sku": "book-1", "qty": 2}]
        });
        if let (Some(base), Some(patch)) = (base.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                if v.is_null() {
                    base.remove(k);
                } else {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        base
    }

    fn refused(patch: Json) -> Invalid {
        validate(&order(patch)).expect_err("refused")
    }

    #[test]
    fn a_good_order_is_canonicalised() {
        let ok = validate(&order(json!({}))).unwrap();
        assert_eq!(ok.amount, "19.90");
        assert_eq!(ok.items, r#"[{"sku":"book-1","qty":2}]"#);
        assert_eq!(
            validate(&order(json!({"amount": "0007"}))).unwrap().amount,
            "7.00"
        );
        assert_eq!(
            validate(&order(json!({"amount": "9999999999.99"})))
                .unwrap()
                .amount,
            "9999999999.99"
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        for (patch, field) in [
            (json!({"customer_id": null}), "customer_id"),
            (json!({"customer_id": "7"}), "customer_id"),
            (json!({"customer_id": -1}), "customer_id"),
            (json!({"customer_id": 0}), "customer_id"),
            (json!({"amount": 19.99}), "amount"),
            (json!({"amount": "-1.00"}), "amount"),
            (json!({"amount": "0.00"}), "amount"),
            (json!({"amount": "1.001"}), "amount"),
            (json!({"amount": "1e3"}), "amount"),
            (json!({"amount": "12."}), "amount"),
            (json!({"amount": "10000000000.00"}), "amount"),
            (json!({"amount": ""}), "amount"),
            (json!({"currency": "EURO"}), "currency"),
            (json!({"currency": "XYZ"}), "currency"),
            (json!({"currency": "eur"}), "currency"),
            (json!({"items": []}), "items"),
            (json!({"items": "book"}), "items"),
            (json!({"items": [{"sku": "", "qty": 1}]}), "items[0].sku"),
            (json!({"items": [{"sku": "a", "qty": 0}]}), "items[0].qty"),
            (json!({"items": [{"sku": "a", "qty": 1.5}]}), "items[0].qty"),
            (
                json!({"items": [{"sku": "a", "qty": 1, "price": 3}]}),
                "items[0].price",
            ),
            (json!({"discount": "5"}), "discount"),
        ] {
            let err = refused(patch.clone());
            assert_eq!(err.field, field, "{patch}: {err:?}");
        }
        assert_eq!(validate(&json!([1])).unwrap_err().field, "");
    }
}
