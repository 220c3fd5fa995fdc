//! A strict RFC 8941 Dictionary parser, the syntax of targeted cache-control fields.
//!
//! Only what RFC 9213 needs: members keep their bare value, parameters are parsed (so a field
//! that carries them is still valid) and then dropped, byte sequences are validated but not
//! decoded. Any syntax error fails the whole field, as RFC 8941 §4.2 requires; the caller then
//! ignores the field.

//= https://www.rfc-editor.org/rfc/rfc9213#section-2.2
//# Targeted fields are Dictionary Structured Fields
//= https://www.rfc-editor.org/rfc/rfc8941#section-4.2
//# If parsing fails -- including when calling another algorithm -- the entire field value
//# MUST be ignored (i.e., treated as if the field were not present in the section).

/// Whether base64 text (alphabet already checked) decodes: `=` only as padding at the end,
/// never more than the last quantum lacks (missing padding is synthesized), and no dangling
/// sixth of a byte. Non-zero pad
/// bits are tolerated, as §4.2.7 asks.
//= https://www.rfc-editor.org/rfc/rfc8941#section-4.2.7
//# parsers SHOULD NOT fail when "=" padding is not present
fn decodes_as_base64(text: &[u8]) -> bool {
    let data = text.len() - text.iter().rev().take_while(|&&c| c == b'=').count();
    let pad = text.len() - data;
    !text[..data].contains(&b'=') && data % 4 != 1 && pad <= (4 - data % 4) % 4
}

/// A bare item (RFC 8941 §3.3). Decimals keep their text: no cache directive takes one, so they
/// only need to be recognised as "not an Integer".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BareItem {
    /// sf-integer, at most 15 digits.
    Integer(i64),
    /// sf-decimal, as written.
    Decimal(String),
    /// sf-string, unescaped.
    String(String),
    /// sf-token.
    Token(String),
    /// sf-binary (content not decoded).
    ByteSequence,
    /// sf-boolean.
    Boolean(bool),
}

/// A dictionary member's value: an Item or an Inner List (parameters dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// A single item.
    Item(BareItem),
    /// An inner list of items.
    InnerList(Vec<BareItem>),
}

/// Syntax error somewhere in the field; the field is then ignored as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SfError;

type Res<T> = Result<T, SfError>;

/// Parses a Dictionary from the combined field value (lines joined with ", "). Duplicate keys
/// keep the last value, in the position of the first (RFC 8941 §4.2.2).
pub fn parse_dictionary(input: &[u8]) -> Result<Vec<(String, Member)>, SfError> {
    let mut p = Parser { s: input, i: 0 };
    p.skip_sp();
    let mut out: Vec<(String, Member)> = Vec::new();
    while !p.eof() {
        let key = p.key()?;
        let member = if p.peek() == Some(b'=') {
            p.i += 1;
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Member::Item(BareItem::Boolean(true))
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = member,
            None => out.push((key, member)),
        }
        p.skip_ows();
        if p.eof() {
            break;
        }
        if p.next() != Some(b',') {
            return Err(SfError);
        }
        p.skip_ows();
        if p.eof() {
            // A trailing comma is an error.
            return Err(SfError);
        }
    }
    p.skip_sp();
    if !p.eof() {
        return Err(SfError);
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-3.1.2
    //# key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
    fn key(&mut self) -> Res<String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(SfError),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn item_or_inner_list(&mut self) -> Res<Member> {
        if self.peek() == Some(b'(') {
            self.inner_list().map(Member::InnerList)
        } else {
            self.item().map(Member::Item)
        }
    }

    fn item(&mut self) -> Res<BareItem> {
        let v = self.bare_item()?;
        self.parameters()?;
        Ok(v)
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-3.1.1
    //# inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters
    fn inner_list(&mut self) -> Res<Vec<BareItem>> {
        self.i += 1; // '('
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            if self.peek() == Some(b')') {
                self.i += 1;
                self.parameters()?;
                return Ok(items);
            }
            items.push(self.item()?);
            match self.peek() {
                Some(b' ' | b')') => {}
                _ => return Err(SfError),
            }
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-3.1.2
    //# parameters = *( ";" *SP parameter )
    fn parameters(&mut self) -> Res<()> {
        while self.peek() == Some(b';') {
            self.i += 1;
            self.skip_sp();
            self.key()?;
            if self.peek() == Some(b'=') {
                self.i += 1;
                self.bare_item()?;
            }
        }
        Ok(())
    }

    fn bare_item(&mut self) -> Res<BareItem> {
        match self.peek() {
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(b'"') => self.string(),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => Ok(self.token()),
            Some(b':') => self.byte_sequence(),
            Some(b'?') => self.boolean(),
            _ => Err(SfError),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-4.2.4
    //# If type is "integer" and the number of characters in input_number is greater than 15,
    //# fail parsing.
    fn number(&mut self) -> Res<BareItem> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(SfError);
        }
        let digits_start = self.i;
        let mut dot: Option<usize> = None;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.i += 1;
            } else if c == b'.' && dot.is_none() {
                if self.i - digits_start > 12 {
                    return Err(SfError);
                }
                dot = Some(self.i);
                self.i += 1;
            } else {
                break;
            }
            let len = self.i - digits_start;
            if (dot.is_none() && len > 15) || (dot.is_some() && len > 16) {
                return Err(SfError);
            }
        }
        let text = &self.s[start..self.i];
        match dot {
            None => {
                let s = std::str::from_utf8(text).map_err(|_| SfError)?;
                s.parse::<i64>().map(BareItem::Integer).map_err(|_| SfError)
            }
            Some(d) => {
                let frac = self.i - d - 1;
                if frac == 0 || frac > 3 {
                    return Err(SfError);
                }
                Ok(BareItem::Decimal(
                    String::from_utf8_lossy(text).into_owned(),
                ))
            }
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-4.2.5
    //# If char is not in the range %x20-21 / %x23-5B / %x5D-7E, fail parsing.
    fn string(&mut self) -> Res<BareItem> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(SfError),
                Some(b'"') => return Ok(BareItem::String(out)),
                Some(b'\\') => match self.next() {
                    Some(c @ (b'"' | b'\\')) => out.push(char::from(c)),
                    _ => return Err(SfError),
                },
                Some(c) if (0x20..=0x7e).contains(&c) => out.push(char::from(c)),
                Some(_) => return Err(SfError),
            }
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-3.3.4
    //# sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
    fn token(&mut self) -> BareItem {
        let start = self.i;
        self.i += 1;
        while let Some(c) = self.peek() {
            if super::syntax::is_tchar(c) || c == b':' || c == b'/' {
                self.i += 1;
            } else {
                break;
            }
        }
        BareItem::Token(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    //= https://www.rfc-editor.org/rfc/rfc8941#section-4.2.7
    //# Let binary_content be the result of base64-decoding b64_content, synthesizing padding
    //# if necessary (note the requirements about recipient behavior below).  If an error is
    //# encountered, fail parsing.
    fn byte_sequence(&mut self) -> Res<BareItem> {
        self.i += 1;
        let start = self.i;
        loop {
            match self.next() {
                Some(b':') => break,
                Some(c) if c.is_ascii_alphanumeric() || b"+/=".contains(&c) => {}
                _ => return Err(SfError),
            }
        }
        if decodes_as_base64(&self.s[start..self.i - 1]) {
            Ok(BareItem::ByteSequence)
        } else {
            Err(SfError)
        }
    }

    fn boolean(&mut self) -> Res<BareItem> {
        self.i += 1;
        match self.next() {
            Some(b'1') => Ok(BareItem::Boolean(true)),
            Some(b'0') => Ok(BareItem::Boolean(false)),
            _ => Err(SfError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(b: BareItem) -> Member {
        Member::Item(b)
    }

    /// Expected parse: `None` for a syntax error.
    type Expected = Option<Vec<(&'static str, Member)>>;

    #[test]
    fn dictionary_table() {
        use BareItem::*;
        let cases: Vec<(&str, Expected)> = vec![
            ("", Some(vec![])),
            ("   ", Some(vec![])),
            // Byte sequences must decode: padding optional, never more than is missing.
            ("a=:aGVsbG8=:", Some(vec![("a", item(ByteSequence))])),
            ("a=:aGVsbG8:", Some(vec![("a", item(ByteSequence))])),
            ("a=:GVsbG8=:", Some(vec![("a", item(ByteSequence))])),
            ("a=::", Some(vec![("a", item(ByteSequence))])),
            ("a=:/aGVsbG8=:", None),
            ("a=:aGVs=:", None),
            ("a=:a=GVs:", None),
            ("a=:aGVsbG8==:", None),
            ("max-age=60", Some(vec![("max-age", item(Integer(60)))])),
            (
                "max-age=60, no-store",
                Some(vec![
                    ("max-age", item(Integer(60))),
                    ("no-store", item(Boolean(true))),
                ]),
            ),
            (
                "a=1,\tb=2",
                Some(vec![("a", item(Integer(1))), ("b", item(Integer(2)))]),
            ),
            (
                "max-age=60, max-age=30",
                Some(vec![("max-age", item(Integer(30)))]),
            ),
            ("none", Some(vec![("none", item(Boolean(true)))])),
            (
                "no-store=?0",
                Some(vec![("no-store", item(Boolean(false)))]),
            ),
            ("x;a=1;b", Some(vec![("x", item(Boolean(true)))])),
            (
                "max-age=60;foo=bar",
                Some(vec![("max-age", item(Integer(60)))]),
            ),
            (
                r#"private="set-cookie, x""#,
                Some(vec![("private", item(String("set-cookie, x".into())))]),
            ),
            (
                r#"s="a\"b\\c""#,
                Some(vec![("s", item(String("a\"b\\c".into())))]),
            ),
            ("t=abc:/x", Some(vec![("t", item(Token("abc:/x".into())))])),
            ("d=1.5", Some(vec![("d", item(Decimal("1.5".into())))])),
            ("n=-5", Some(vec![("n", item(Integer(-5)))])),
            ("b=:aGVsbG8=:", Some(vec![("b", item(ByteSequence))])),
            (
                "l=(a \"b\" 1);p, m=()",
                Some(vec![
                    (
                        "l",
                        Member::InnerList(vec![Token("a".into()), String("b".into()), Integer(1)]),
                    ),
                    ("m", Member::InnerList(vec![])),
                ]),
            ),
            (
                "n=999999999999999",
                Some(vec![("n", item(Integer(999_999_999_999_999)))]),
            ),
            // Failures.
            ("Max-Age=60", None),
            ("max-age=60,", None),
            ("max-age=60 no-store", None),
            ("max-age = 60", None),
            ("max-age=", None),
            ("n=1234567890123456", None),
            ("d=1.2345", None),
            ("d=1.", None),
            ("d=1234567890123.1", None),
            ("s=\"unterminated", None),
            ("s=\"bad\\n\"", None),
            ("b=:not base64!:", None),
            ("x=?2", None),
            ("x=-", None),
            ("l=(a,b)", None),
            ("1a=1", None),
            (",a", None),
            ("a=1 ", Some(vec![("a", item(Integer(1)))])),
            (" a=1", Some(vec![("a", item(Integer(1)))])),
        ];
        for (input, want) in cases {
            let got = parse_dictionary(input.as_bytes()).ok();
            let want = want.map(|v| {
                v.into_iter()
                    .map(|(k, m)| (k.to_string(), m))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "input {input:?}");
        }
    }

    fn serialize_item(b: &BareItem) -> String {
        match b {
            BareItem::Integer(n) => n.to_string(),
            BareItem::Decimal(d) => d.clone(),
            BareItem::String(s) => {
                let mut o = String::from("\"");
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        o.push('\\');
                    }
                    o.push(c);
                }
                o.push('"');
                o
            }
            BareItem::Token(t) => t.clone(),
            BareItem::ByteSequence => ":AAEC:".to_string(),
            BareItem::Boolean(b) => if *b { "?1" } else { "?0" }.to_string(),
        }
    }

    fn serialize(d: &[(String, Member)]) -> String {
        d.iter()
            .map(|(k, m)| match m {
                Member::Item(BareItem::Boolean(true)) => k.clone(),
                Member::Item(b) => format!("{k}={}", serialize_item(b)),
                Member::InnerList(l) => format!(
                    "{k}=({})",
                    l.iter().map(serialize_item).collect::<Vec<_>>().join(" ")
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn bare_item() -> impl Strategy<Value = BareItem> {
        prop_oneof![
            (-999_999_999_999_999i64..=999_999_999_999_999).prop_map(BareItem::Integer),
            (0u32..1000, 0u32..1000).prop_map(|(a, b)| BareItem::Decimal(format!("{a}.{b}"))),
            "[ -~]{0,12}".prop_map(BareItem::String),
            "[a-zA-Z*][a-zA-Z0-9:/!#$%&'*+.^_`|~-]{0,8}".prop_map(BareItem::Token),
            Just(BareItem::ByteSequence),
            any::<bool>().prop_map(BareItem::Boolean),
        ]
    }

    fn member() -> impl Strategy<Value = Member> {
        prop_oneof![
            bare_item().prop_map(Member::Item),
            proptest::collection::vec(bare_item(), 0..4).prop_map(Member::InnerList),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_dictionary(&s);
        }

        #[test]
        fn roundtrip(entries in proptest::collection::vec(("[a-z*][a-z0-9_.*-]{0,6}", member()), 0..6)) {
            // Deduplicate keys the way the parser does (last value, first position).
            let mut dict: Vec<(String, Member)> = Vec::new();
            for (k, m) in entries {
                match dict.iter_mut().find(|(kk, _)| *kk == k) {
                    Some(slot) => slot.1 = m,
                    None => dict.push((k, m)),
                }
            }
            let text = serialize(&dict);
            prop_assert_eq!(parse_dictionary(text.as_bytes()), Ok(dict), "text {}", text);
        }
    }
}
