//! Recognises SELECTs on `system.local` that name `rpc_address` (a column Cassandra 2.1 lacks in
//! that table), rewrites the text without it, and records where the bridge must re-insert it.
//!
//! The scylla 1.9.0 driver's topology query is
//! `SELECT host_id, rpc_address, data_center, rack, tokens, cluster_name FROM system.local WHERE key='local'`.
//! Matching is done on tokens (case, whitespace, comments and quoting may vary), not on the
//! exact string.

/// Where the bridge-injected `rpc_address` columns sit among the columns the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLayout {
    /// One entry per column of the client's select list: `true` where the bridge injects
    /// `rpc_address`, `false` where the server's next column goes.
    injected: Vec<bool>,
}

impl ColumnLayout {
    /// A layout from explicit slots (`true` = injected).
    pub fn new(injected: Vec<bool>) -> Self {
        Self { injected }
    }

    /// The slots, in the client's column order.
    pub fn slots(&self) -> &[bool] {
        &self.injected
    }

    /// Number of columns the server returns for the rewritten statement.
    pub fn server_columns(&self) -> usize {
        self.injected.iter().filter(|i| !**i).count()
    }

    /// Number of columns the client expects.
    pub fn client_columns(&self) -> usize {
        self.injected.len()
    }
}

/// The topology query the scylla 1.9.0 driver sends on its control connection
/// (`scylla-1.9.0/src/cluster/metadata/fetching.rs`).
pub const SCYLLA_1_9_TOPOLOGY_QUERY: &str = "SELECT host_id, rpc_address, data_center, rack, tokens, cluster_name FROM system.local WHERE key='local'";

/// A rewritten statement: the text to send upstream and the column layout to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Statement text without `rpc_address`.
    pub text: String,
    /// Where to re-insert it in results.
    pub layout: ColumnLayout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Quoted,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// Raw text of the token as written.
    raw: &'a str,
    start: usize,
}

impl Token<'_> {
    /// Whether this token names `name` (unquoted: case-insensitive; quoted: exact).
    fn names(&self, name: &str) -> bool {
        match self.kind {
            Kind::Ident => self.raw.eq_ignore_ascii_case(name),
            Kind::Quoted => {
                let inner = &self.raw[1..self.raw.len() - 1];
                inner.replace("\"\"", "\"") == name
            }
            Kind::Other => false,
        }
    }

    fn is_symbol(&self, c: &str) -> bool {
        self.kind == Kind::Other && self.raw == c
    }

    fn is_identifier(&self) -> bool {
        matches!(self.kind, Kind::Ident | Kind::Quoted)
    }
}

/// Splits CQL text into tokens, dropping whitespace and comments. `None` on unterminated
/// quotes or comments (the bridge then leaves the statement alone).
fn tokenize(text: &str) -> Option<Vec<Token<'_>>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if (c == b'-' && bytes.get(i + 1) == Some(&b'-'))
            || (c == b'/' && bytes.get(i + 1) == Some(&b'/'))
        {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let close = text.get(i + 2..)?.find("*/")?;
            i += 2 + close + 2;
            continue;
        }
        let kind = if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Kind::Ident
        } else if c == b'"' || c == b'\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return None,
                    Some(&q) if q == c => {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            if c == b'"' { Kind::Quoted } else { Kind::Other }
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            Kind::Other
        } else {
            // One character (possibly multi-byte UTF-8) of punctuation.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Other
        };
        out.push(Token {
            kind,
            raw: &text[start..i],
            start,
        });
    }
    Some(out)
}

/// If `query` is `SELECT <plain columns> FROM system.local ...` and names `rpc_address`,
/// returns the text without it and the layout to restore. Anything else (other tables,
/// `*`, functions, aliases, DISTINCT/JSON, only `rpc_address` selected) returns `None` and is
/// forwarded untouched.
pub fn rewrite(query: &str) -> Option<Rewrite> {
    let tokens = tokenize(query)?;
    let mut it = tokens.iter().peekable();
    let select = it.next()?;
    if select.kind != Kind::Ident || !select.names("select") {
        return None;
    }
    let mut items: Vec<&Token<'_>> = Vec::new();
    let from = loop {
        let item = it.next()?;
        if !item.is_identifier() || item.names("distinct") || item.names("json") {
            return None;
        }
        items.push(item);
        let sep = it.next()?;
        if sep.is_symbol(",") {
            continue;
        }
        if sep.kind == Kind::Ident && sep.names("from") {
            break sep;
        }
        return None;
    };
    let ks = it.next()?;
    let dot = it.next()?;
    let table = it.next()?;
    if !(ks.names("system") && dot.is_symbol(".") && table.names("local")) {
        return None;
    }
    if it
        .peek()
        .is_some_and(|t| t.is_symbol(".") || t.is_symbol("("))
    {
        return None;
    }
    let injected: Vec<bool> = items.iter().map(|t| t.names("rpc_address")).collect();
    if !injected.iter().any(|i| *i) || injected.iter().all(|i| *i) {
        return None;
    }
    let kept: Vec<&str> = items
        .iter()
        .zip(&injected)
        .filter(|(_, inj)| !**inj)
        .map(|(t, _)| t.raw)
        .collect();
    let text = format!("SELECT {} {}", kept.join(", "), &query[from.start..]);
    Some(Rewrite {
        text,
        layout: ColumnLayout::new(injected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_driver_query() {
        let r = rewrite(SCYLLA_1_9_TOPOLOGY_QUERY).unwrap();
        assert_eq!(
            r.text,
            "SELECT host_id, data_center, rack, tokens, cluster_name FROM system.local WHERE key='local'"
        );
        assert_eq!(r.layout.slots(), &[false, true, false, false, false, false]);
        assert_eq!(r.layout.server_columns(), 5);
        assert_eq!(r.layout.client_columns(), 6);
    }

    #[test]
    fn tolerates_case_whitespace_comments_and_quotes() {
        let q = "  select /* hi */ \"host_id\",\n RPC_ADDRESS -- x\n , \"cluster_name\" FROM \"system\" . LOCAL where key = 'local' ;";
        let r = rewrite(q).unwrap();
        assert_eq!(
            r.text,
            "SELECT \"host_id\", \"cluster_name\" FROM \"system\" . LOCAL where key = 'local' ;"
        );
        assert_eq!(r.layout.slots(), &[false, true, false]);
        let r = rewrite("SELECT \"rpc_address\", host_id FROM system.local").unwrap();
        assert_eq!(r.layout.slots(), &[true, false]);
    }

    #[test]
    fn leaves_other_statements_alone() {
        for q in [
            "SELECT host_id FROM system.local WHERE key='local'",
            "SELECT host_id, rpc_address FROM system.peers",
            "SELECT * FROM system.local",
            "SELECT rpc_address FROM system.local",
            "SELECT host_id, rpc_address AS a FROM system.local",
            "SELECT DISTINCT rpc_address, key FROM system.local",
            "SELECT host_id, \"RPC_ADDRESS\" FROM system.local",
            "SELECT host_id, rpc_address FROM local",
            "SELECT host_id, rpc_address FROM system.local_x",
            "SELECT host_id, writetime(rpc_address) FROM system.local",
            "INSERT INTO system.local (rpc_address) VALUES ('1')",
            "SELECT host_id, rpc_address FROM system.local WHERE key='unterminated",
            "SELECT host_id, rpc_address /* open comment FROM system.local",
            "",
            "SELECT",
        ] {
            assert_eq!(rewrite(q), None, "{q}");
        }
    }

    #[test]
    fn multibyte_text_does_not_panic() {
        assert_eq!(rewrite("SELECT é, rpc_address FROM system.local"), None);
        assert!(rewrite("SELECT host_id, rpc_address FROM system.local WHERE key='é'").is_some());
    }
}
