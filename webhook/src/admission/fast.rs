//! The quick reading of an AdmissionReview: one pass over the body that builds exactly what the serde reading
//! ([`super::read_with_serde`]) builds, or gives up.
//!
//! Why by hand: serde_json's own cost of checking a review's syntax (skipping every value) was 1.9 times the
//! no-op server's whole request, and simd-json and jiter cost more still, counted by callgrind on the bench
//! review (`BENCHMARKS.md`). A reader that knows which fields the rules read walks the rest without the serde
//! machinery around each value.
//!
//! Why it is safe: it is strict. Whatever it is not sure of — any syntax error, a string with a lone surrogate,
//! a field of an unexpected type or given twice, a struct written as a JSON list, a number serde_json does not
//! read, nesting deeper than [`MAX_DEPTH`], as many values as the review may hold — makes it give up (`None`),
//! and the serde reading then decides, with its own messages. Numbers it does build are read by serde_json
//! itself. So it answers only where the serde reading answers the same; the property tests below hold it to
//! that over generated values and mutated bodies.

use std::borrow::Cow;

use tprotect_policy::json::Json;
use wide::u8x16;

use super::{IncomingReview, ReviewKind, ReviewOperation, ReviewRequest, ReviewResource, ReviewUser};
use crate::limits::MAX_REVIEW_VALUES;

/// Deeper nesting is left to the serde reading (whose own limit for what it builds is 128).
const MAX_DEPTH: usize = 64;

/// Reads `text` as an AdmissionReview v1 with the serde reading's result and value count, or `None` when
/// only the serde reading may decide.
pub(super) fn read_review(text: &str) -> Option<(IncomingReview<'_>, usize)> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        values: 0,
        depth: 0,
    };
    let review = reader.review()?;
    reader.whitespace();
    (reader.pos == reader.bytes.len()).then_some((review, reader.values))
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Values built so far, counted as the serde reading counts them.
    values: usize,
    depth: usize,
}

/// Sets `slot` once: a field given twice is the serde reading's to refuse.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Reader<'a> {
    #[inline]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte after white space, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn count(&mut self) -> Option<()> {
        self.values += 1;
        (self.values < MAX_REVIEW_VALUES).then_some(())
    }

    /// `null`, consumed if it is next.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Walks an object, calling `field` with each key and the reader positioned at its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>) -> Option<()> {
        self.members(b'{', b'}', |reader| {
            let key = reader.string()?;
            reader.eat(b':')?;
            field(reader, key)
        })
    }

    /// An object, checked and not built: its keys are not even borrowed.
    fn skip_object(&mut self) -> Option<()> {
        self.members(b'{', b'}', |reader| {
            reader.scan_string()?;
            reader.eat(b':')?;
            reader.skip()
        })
    }

    fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.members(b'[', b']', item)
    }

    /// The members of an object or array between `open` and `close`, separated by commas, each read by
    /// `member`.
    fn members(
        &mut self,
        open: u8,
        close: u8,
        mut member: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        if self.peek()? == close {
            self.pos += 1;
        } else {
            loop {
                member(self)?;
                match self.peek()? {
                    b',' => self.pos += 1,
                    byte if byte == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// The string next: where its text starts and ends (its quotes excluded), and whether it holds an
    /// escape; control characters refused.
    // Always inlined: it runs for every string, and a call's prologue cost more than most strings' scans.
    #[inline(always)]
    fn scan_string(&mut self) -> Option<(usize, usize, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let bytes = self.bytes;
        let mut i = self.pos + 1;
        let mut escaped = false;
        loop {
            // Sixteen bytes at a time up to the first that ends the plain run (a quote, a backslash, a control
            // character): most strings of a review are plain.
            match bytes.get(i..i + 16) {
                Some(chunk) => {
                    let special = special_bytes(chunk.try_into().ok()?);
                    if special == 0 {
                        i += 16;
                        continue;
                    }
                    i += special.trailing_zeros() as usize;
                }
                None => {
                    while !is_special(*bytes.get(i)?) {
                        i += 1;
                    }
                }
            }
            match bytes[i] {
                b'"' => {
                    let start = self.pos + 1;
                    self.pos = i + 1;
                    return Some((start, i, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *bytes.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            hex4(bytes.get(i + 2..i + 6)?)?;
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A string, borrowed from the body unless it holds an escape.
    #[inline]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (start, end, escaped) = self.scan_string()?;
        let raw = self.text.get(start..end)?;
        if escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(raw))
        }
    }

    /// A string or null (`None`).
    fn optional_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// Any value, checked and not built.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.scan_string().map(drop),
            b'{' => self.skip_object(),
            b'[' => self.array(|reader| reader.skip()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number_text().map(drop),
            _ => None,
        }
    }

    /// A number's text, checked against JSON's grammar.
    fn number_text(&mut self) -> Option<&'a str> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.pos = i;
        self.text.get(start..i)
    }

    /// Any value, built and counted as the serde reading's `Counted`.
    fn counted(&mut self) -> Option<Json<'a>> {
        self.count()?;
        Some(match self.peek()? {
            b'"' => Json::String(self.string()?),
            b'{' => {
                let mut entries = Vec::new();
                self.object(|reader, key| {
                    let value = reader.counted()?;
                    entries.push((key, value));
                    Some(())
                })?;
                Json::Object(entries)
            }
            b'[' => {
                let mut items = Vec::new();
                self.array(|reader| {
                    items.push(reader.counted()?);
                    Some(())
                })?;
                Json::Array(items)
            }
            b't' => self.literal(b"true").map(|()| Json::Bool(true))?,
            b'f' => self.literal(b"false").map(|()| Json::Bool(false))?,
            b'n' => self.literal(b"null").map(|()| Json::Null)?,
            // serde_json's own number reading, so that a number is exactly what the serde reading builds.
            b'-' | b'0'..=b'9' => Json::Number(serde_json::from_str(self.number_text()?).ok()?),
            _ => return None,
        })
    }

    fn review(&mut self) -> Option<IncomingReview<'a>> {
        let (mut api_version, mut kind, mut request) = (None, None, None);
        self.object(|reader, key| match key.as_ref() {
            "apiVersion" => once(&mut api_version, reader.string()?),
            "kind" => once(&mut kind, reader.string()?),
            "request" => once(&mut request, reader.request()?),
            _ => reader.skip(),
        })?;
        Some(IncomingReview {
            api_version: api_version?,
            kind: kind?,
            request: Some(request?),
        })
    }

    fn request(&mut self) -> Option<ReviewRequest<'a>> {
        let mut uid = None;
        let mut kind = None;
        let mut resource = None;
        let mut name = None;
        let mut namespace = None;
        let mut operation = None;
        let mut user_info = None;
        let mut object = None;
        let mut old_object = None;
        self.object(|reader, key| match key.as_ref() {
            "uid" => once(&mut uid, reader.string()?),
            "kind" => once(&mut kind, reader.kind()?),
            "resource" => once(&mut resource, reader.resource()?),
            "name" => once(&mut name, reader.string()?),
            "namespace" => once(&mut namespace, reader.optional_string()?),
            "operation" => once(&mut operation, reader.operation()?),
            "userInfo" => once(&mut user_info, reader.user()?),
            "object" => once(&mut object, reader.rule_object()?),
            "oldObject" => once(&mut old_object, reader.rule_object()?),
            _ => reader.skip(),
        })?;
        Some(ReviewRequest {
            uid: uid?,
            kind: kind?,
            _resource: resource?,
            name: name.unwrap_or_default(),
            namespace: namespace.flatten(),
            operation: operation?,
            user_info: user_info?,
            object: object.flatten(),
            old_object: old_object.flatten(),
        })
    }

    fn kind(&mut self) -> Option<ReviewKind<'a>> {
        let [group, version, kind] = self.strings(["group", "version", "kind"])?;
        Some(ReviewKind { group, version, kind })
    }

    fn resource(&mut self) -> Option<ReviewResource<'a>> {
        let [group, version, resource] = self.strings(["group", "version", "resource"])?;
        Some(ReviewResource {
            _group: group,
            _version: version,
            _resource: resource,
        })
    }

    /// An object whose `names` are required strings (other fields skipped).
    fn strings<const N: usize>(&mut self, names: [&str; N]) -> Option<[Cow<'a, str>; N]> {
        let mut values = [const { None }; N];
        self.object(|reader, key| match names.iter().position(|name| *name == key) {
            Some(at) => once(&mut values[at], reader.string()?),
            None => reader.skip(),
        })?;
        if values.iter().any(Option::is_none) {
            return None;
        }
        Some(values.map(Option::unwrap_or_default))
    }

    fn operation(&mut self) -> Option<ReviewOperation> {
        Some(match self.string()?.as_ref() {
            "CREATE" => ReviewOperation::Create,
            "UPDATE" => ReviewOperation::Update,
            "DELETE" => ReviewOperation::Delete,
            "CONNECT" => ReviewOperation::Connect,
            _ => return None,
        })
    }

    fn user(&mut self) -> Option<ReviewUser<'a>> {
        let mut username = None;
        self.object(|reader, key| match key.as_ref() {
            "username" => once(&mut username, reader.optional_string()?),
            _ => reader.skip(),
        })?;
        Some(ReviewUser {
            username: username.flatten(),
        })
    }

    /// `object` or `oldObject` as the serde reading's `ObjectSeed` builds it (`null`: no object).
    fn rule_object(&mut self) -> Option<Option<Json<'a>>> {
        if self.null()? {
            return Some(None);
        }
        self.count()?;
        let mut entries = Vec::with_capacity(2);
        self.object(|reader, key| {
            let value = match key.as_ref() {
                "metadata" => reader.metadata()?,
                "spec" => reader.counted()?,
                _ => return reader.skip(),
            };
            entries.push((key, value));
            Some(())
        })?;
        Some(Some(Json::Object(entries)))
    }

    /// `metadata` as the serde reading's `MetadataSeed` builds it.
    fn metadata(&mut self) -> Option<Json<'a>> {
        if self.null()? {
            return Some(Json::Null);
        }
        self.count()?;
        let mut entries = Vec::with_capacity(4);
        self.object(|reader, key| {
            let value = match key.as_ref() {
                "name" | "namespace" | "generateName" => {
                    reader.count()?;
                    reader.optional_string()?.map_or(Json::Null, Json::String)
                }
                "labels" | "annotations" => reader.string_map()?,
                "deletionTimestamp" => reader.counted()?,
                _ => return reader.skip(),
            };
            entries.push((key, value));
            Some(())
        })?;
        Some(Json::Object(entries))
    }

    /// Labels or annotations: a map of strings, or null (not counted, as in the serde reading).
    fn string_map(&mut self) -> Option<Json<'a>> {
        if self.null()? {
            return Some(Json::Null);
        }
        self.count()?;
        let mut entries = Vec::new();
        self.object(|reader, key| {
            reader.count()?;
            let value = Json::String(reader.string()?);
            entries.push((key, value));
            Some(())
        })?;
        Some(Json::Object(entries))
    }
}

/// A bit for each of the sixteen bytes that is a quote, a backslash or below 0x20 (lowest bit: first byte).
fn special_bytes(chunk: [u8; 16]) -> u32 {
    let bytes = u8x16::new(chunk);
    let quote = bytes.simd_eq(u8x16::splat(b'"'));
    let backslash = bytes.simd_eq(u8x16::splat(b'\\'));
    let control = bytes.min(u8x16::splat(0x1f)).simd_eq(bytes);
    (quote | backslash | control).to_bitmask()
}

fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Four hex digits.
fn hex4(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | nibble as u16)
    })
}

/// The text of a string with escapes (already checked by `scan_string`); a lone surrogate gives up.
fn unescape(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    // A byte loop rather than a search per escape: escaped strings (a last-applied annotation) are dense
    // with escapes.
    let (mut plain_from, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(plain_from..i)?);
        let (ch, used) = match *bytes.get(i + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let first = u32::from(hex4(bytes.get(i + 2..i + 6)?)?);
                match first {
                    0xD800..=0xDBFF => {
                        if bytes.get(i + 6..i + 8)? != b"\\u" {
                            return None;
                        }
                        let second = u32::from(hex4(bytes.get(i + 8..i + 12)?)?);
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return None;
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        (char::from_u32(code)?, 12)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => (char::from_u32(first)?, 6),
                }
            }
            _ => return None,
        };
        out.push(ch);
        i += used;
        plain_from = i;
    }
    out.push_str(raw.get(plain_from..)?);
    Some(out)
}

// The JSON shapes of the rules' property tests (webhook/tests/fuzz.rs includes them the same way).
#[cfg(test)]
#[path = "../../../crates/policy/tests/shapes/mod.rs"]
mod shapes;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::admission::fast::shapes;
    use crate::admission::read_with_serde;

    /// The quick reading either gives up or builds what the serde reading builds, with the same count.
    fn agrees(text: &str) -> bool {
        let Some((quick, values)) = read_review(text) else {
            return false;
        };
        let (reference, reference_values) = read_with_serde(text).unwrap_or_else(|error| {
            panic!("the quick reading read {text:?}, the serde reading refused: {error:?}")
        });
        assert_eq!(format!("{quick:?}"), format!("{reference:?}"), "for {text}");
        assert_eq!(values, reference_values, "value count for {text}");
        true
    }

    #[test]
    fn reads_the_bench_review_as_serde_does() {
        let text = serde_json::to_string(&crate::testing::amr_update_review()).unwrap();
        assert!(agrees(&text), "the quick reading gave up on the bench review");
        let pretty = serde_json::to_string_pretty(&crate::testing::amr_update_review()).unwrap();
        assert!(
            agrees(&pretty),
            "the quick reading gave up on the pretty-printed review"
        );
    }

    #[test]
    fn gives_up_where_only_serde_may_decide() {
        let review = crate::testing::amr_update_review();
        let text = serde_json::to_string(&review).unwrap();
        let cases = [
            ("trailing garbage", format!("{text} x")),
            ("truncated", text[..text.len() - 1].to_string()),
            (
                "a field twice",
                text.replacen("\"userInfo\":", "\"userInfo\":{},\"userInfo\":", 1),
            ),
            ("a control character", text.replacen("alice", "al\u{1}ice", 1)),
            ("a lone surrogate", text.replacen("alice", "al\\ud800ice", 1)),
            (
                "a leading zero",
                text.replacen("\"generation\":2", "\"generation\":02", 1),
            ),
            (
                "a trailing comma",
                text.replacen("\"conditions\":[]", "\"conditions\":[1,]", 1),
            ),
            (
                "an unknown operation",
                text.replacen("\"UPDATE\"", "\"PATCH\"", 1),
            ),
            (
                "request null",
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": null})
                    .to_string(),
            ),
            ("deep nesting", {
                let deep = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
                text.replacen("\"dryRun\":false", &format!("\"dryRun\":{deep}"), 1)
            }),
        ];
        for (case, body) in cases {
            assert_ne!(body, text, "{case}: the edit did not apply");
            assert!(
                read_review(&body).is_none(),
                "{case}: the quick reading did not give up"
            );
        }
    }

    #[test]
    fn escapes_nulls_and_numbers_read_as_serde_reads_them() {
        let mut review = crate::testing::amr_update_review();
        let object = &mut review["request"]["object"];
        object["metadata"]["labels"]["esc\"aped\\key/\u{e9}"] = json!("tab\there \u{1F600} \u{7f}");
        object["metadata"]["generateName"] = Value::Null;
        object["metadata"]["annotations"] = Value::Null;
        object["spec"]["numbers"] = json!([
            0,
            -0,
            1.5,
            -2e-3,
            1E+2,
            18446744073709551615u64,
            -9223372036854775808i64,
            1e300
        ]);
        object["spec"]["nested"] = json!({"a": [true, false, null, {"b": []}], "c": {}});
        review["request"]["namespace"] = Value::Null;
        review["request"]["userInfo"]["username"] = Value::Null;
        review["request"]["oldObject"] = Value::Null;
        let text = serde_json::to_string(&review).unwrap();
        assert!(agrees(&text), "gave up on {text}");
        // Escapes the serializer would not write.
        let text = text.replacen("my-app-name", "my-app-\\u006eame\\/\\ud83d\\ude00", 1);
        assert!(agrees(&text), "gave up on {text}");
    }

    /// Values shaped as the rules' property tests shape them, with strings of every kind JSON escapes.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            shapes::plain_leaf(),
            "[a-z\"\\\\/\u{0}-\u{1f}\u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
        ];
        shapes::arbitrary_json(leaf.boxed())
    }

    /// Where in the review a generated value goes.
    const PLACES: [&str; 10] = [
        "/request/object/spec",
        "/request/object/metadata",
        "/request/object/metadata/labels",
        "/request/object/metadata/name",
        "/request/object/status",
        "/request/oldObject",
        "/request/userInfo",
        "/request/namespace",
        "/request/kind",
        "/request/options",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_values_anywhere_read_as_serde_reads_them(value in json_value(), place in 0..PLACES.len()) {
            let mut review = crate::testing::amr_update_review();
            if let Some(slot) = review.pointer_mut(PLACES[place]) {
                *slot = value;
            }
            let text = serde_json::to_string(&review).unwrap();
            let read = agrees(&text);
            // Serde also reads a struct from a JSON list, which the quick reading leaves to it; anywhere
            // else, what serde reads the quick reading reads too (so these cases test it, not the fallback).
            let struct_as_list = matches!(PLACES[place], "/request/kind" | "/request/userInfo");
            if !struct_as_list && read_with_serde(&text).is_ok() {
                prop_assert!(read, "the quick reading gave up on {}", text);
            }
        }

        #[test]
        fn mutated_bodies_are_read_as_serde_reads_them_or_left_to_it(
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(&b"\"\\{}[],:0-.eE+ntfu\x01a"[..])), 1..4)
        ) {
            let mut body = serde_json::to_vec(&crate::testing::amr_update_review()).unwrap();
            for (at, edit, byte) in edits {
                let at = at.index(body.len());
                match edit {
                    0 => body[at] = byte,
                    1 => { body.remove(at); }
                    _ => body.insert(at, byte),
                }
            }
            if let Ok(text) = std::str::from_utf8(&body) {
                agrees(text);
            }
        }
    }
}
