//! Which table a statement logged as a QUERY event inserts into.
//!
//! A session can log its writes as statements (`SET SESSION
//! binlog_format = 'STATEMENT'`, or `MIXED`) even when the server's global
//! format is ROW. Its rows are then not in the binlog, only the SQL text, so
//! an INSERT into a tailed table must not pass unnoticed. Only the target
//! of `INSERT` and `REPLACE` is needed (the statements that add rows; an
//! UPDATE or DELETE publishes nothing even when logged as rows, and
//! `LOAD DATA` is logged as its own event types, which the reader refuses),
//! so this is a small lexer over the statement's first words, not a SQL
//! parser: comments, executable comments (`/*! … */`, `/*M! … */`),
//! back-quoted names and the statement's modifiers are understood.

/// A table named by a statement; `database` when it was qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub database: Option<String>,
    pub table: String,
}

/// The table an `INSERT` or `REPLACE` statement inserts into; `None` for
/// any other statement (or one too broken to name a table).
pub fn inserted_table(sql: &str) -> Option<TableRef> {
    let mut tokens = Lexer::new(sql);
    let verb = tokens.next_word()?;
    if !verb.eq_ignore_ascii_case("INSERT") && !verb.eq_ignore_ascii_case("REPLACE") {
        return None;
    }
    let mut name = loop {
        match tokens.next()? {
            Token::Word(w)
                if ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"]
                    .iter()
                    .any(|m| w.eq_ignore_ascii_case(m)) => {}
            Token::Word(w) | Token::Quoted(w) => break w,
            _ => return None,
        }
    };
    let mut database = None;
    if tokens.peek_dot() {
        tokens.next();
        match tokens.next()? {
            Token::Word(w) | Token::Quoted(w) => {
                database = Some(name);
                name = w;
            }
            _ => return None,
        }
    }
    Some(TableRef {
        database,
        table: name,
    })
}

#[derive(Debug, PartialEq)]
enum Token {
    /// An unquoted word: a keyword or a name.
    Word(String),
    /// A back-quoted name, unquoted.
    Quoted(String),
    Dot,
    /// Anything else (strings, numbers with signs, punctuation).
    Other,
}

struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Self { rest: sql }
    }

    /// Skips blanks, comments and the markers of executable comments (their
    /// content is SQL the server ran).
    fn skip_blank(&mut self) {
        loop {
            let s = self.rest.trim_start();
            if let Some(body) = s.strip_prefix("/*!").or_else(|| s.strip_prefix("/*M!")) {
                // The version digits that may follow belong to the marker.
                self.rest = body.trim_start_matches(|c: char| c.is_ascii_digit());
            } else if let Some(body) = s.strip_prefix("/*") {
                self.rest = body.find("*/").map_or("", |end| &body[end + 2..]);
            } else if let Some(body) = s.strip_prefix("*/") {
                self.rest = body;
            } else if s.starts_with('#') || s.starts_with("-- ") || s.starts_with("--\t") {
                self.rest = s.find('\n').map_or("", |end| &s[end + 1..]);
            } else {
                self.rest = s;
                return;
            }
        }
    }

    fn peek_dot(&mut self) -> bool {
        self.skip_blank();
        self.rest.starts_with('.')
    }

    fn next_word(&mut self) -> Option<String> {
        match self.next()? {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        self.skip_blank();
        let mut chars = self.rest.char_indices();
        let (_, first) = chars.next()?;
        if first == '`' {
            // A back-quoted name; a doubled back quote is one back quote.
            let mut name = String::new();
            let mut iter = self.rest[1..].char_indices().peekable();
            while let Some((i, c)) = iter.next() {
                if c == '`' {
                    if matches!(iter.peek(), Some((_, '`'))) {
                        iter.next();
                        name.push('`');
                        continue;
                    }
                    self.rest = &self.rest[1 + i + 1..];
                    return Some(Token::Quoted(name));
                }
                name.push(c);
            }
            self.rest = "";
            return None;
        }
        if first == '.' {
            self.rest = &self.rest[1..];
            return Some(Token::Dot);
        }
        let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
        if is_word(first) {
            let end = self
                .rest
                .char_indices()
                .find(|&(_, c)| !is_word(c))
                .map_or(self.rest.len(), |(i, _)| i);
            let word = self.rest[..end].to_owned();
            self.rest = &self.rest[end..];
            return Some(Token::Word(word));
        }
        self.rest = &self.rest[first.len_utf8()..];
        Some(Token::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_replaces_name_their_target() {
        for (sql, expected) in [
            (
                "INSERT INTO shop.orders (id) VALUES (1)",
                (Some("shop"), "orders"),
            ),
            ("insert into orders values (1)", (None, "orders")),
            (
                "INSERT LOW_PRIORITY IGNORE INTO `shop`.`orders` SET id = 1",
                (Some("shop"), "orders"),
            ),
            ("INSERT orders VALUES (1)", (None, "orders")),
            (
                "REPLACE INTO shop . orders VALUES (1)",
                (Some("shop"), "orders"),
            ),
            (
                "INSERT DELAYED INTO `we``ird`.`or.ders` VALUES (1)",
                (Some("we`ird"), "or.ders"),
            ),
            (
                "/* app: checkout */ INSERT INTO shop.orders SELECT * FROM staging.orders",
                (Some("shop"), "orders"),
            ),
            (
                "-- a comment\n# another\n  INSERT INTO shop.orders VALUES (1)",
                (Some("shop"), "orders"),
            ),
            (
                "/*!40000 INSERT INTO shop.orders VALUES (1) */",
                (Some("shop"), "orders"),
            ),
            (
                "INSERT INTO shop.orders PARTITION (p0) VALUES (1) ON DUPLICATE KEY UPDATE id = id",
                (Some("shop"), "orders"),
            ),
            ("INSERT INTO заказы VALUES (1)", (None, "заказы")),
        ] {
            let (database, table) = expected;
            let expected = TableRef {
                database: database.map(str::to_owned),
                table: table.to_owned(),
            };
            assert_eq!(inserted_table(sql), Some(expected), "{sql}");
        }
    }

    #[test]
    fn other_statements_insert_into_nothing() {
        for sql in [
            "UPDATE shop.orders SET status = 'paid'",
            "DELETE FROM shop.orders WHERE id = 1",
            "SAVEPOINT `s1`",
            "ROLLBACK TO `s1`",
            "COMMIT",
            "BEGIN",
            "XA START 'x'",
            "CREATE TABLE shop.orders2 LIKE shop.orders",
            "SELECT 1 /* INSERT INTO shop.orders */",
            "/* INSERT INTO shop.orders */ DELETE FROM shop.orders",
            "",
            "INSERT",
            "INSERT INTO",
            "INSERT INTO `unterminated",
            "INSERT INTO shop.",
            "INSERT INTO (1)",
        ] {
            assert_eq!(inserted_table(sql), None, "{sql}");
        }
    }
}
