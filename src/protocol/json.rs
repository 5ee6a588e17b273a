//! A small JSON scanner and writer for the client's hot path, so the browser build needs no
//! `serde_json`: validating a value, splitting a top-level object into key → raw value slices,
//! reading strings (escapes, `\u` pairs), `u64`s and bools, and writing strings with the
//! escaping `serde_json` uses (so encoded frames are byte-for-byte what `serde_json` would write).
//!
//! Everything is checked against RFC 8259, plus the two limits `serde_json` applies when it
//! parses a `Value` (so a payload the client accepts is one the server can read): a `\u` escape
//! must not be a lone surrogate, and containers nest at most [`MAX_DEPTH`] deep. Numbers are
//! checked for syntax only. Never panics: bad input is a [`JsonError`].

use std::borrow::Cow;

/// How deep arrays and objects may nest (as for `serde_json`, 128 levels are refused).
pub const MAX_DEPTH: usize = 127;

/// Why a text is not the JSON that was asked for: a static reason and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    reason: &'static str,
    offset: usize,
}

impl JsonError {
    fn new(reason: &'static str, offset: usize) -> Self {
        JsonError { reason, offset }
    }

    /// What is wrong, e.g. `expected a value` or `invalid escape`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The byte offset where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Checks that `text` is exactly one JSON value (whitespace around it allowed).
#[cfg(test)]
pub fn validate(text: &str) -> Result<(), JsonError> {
    validate_at(text, 0)
}

/// Like [`validate`], for a value that will sit `depth` containers deep in a larger document
/// (a send's `data` is one level inside its frame, so the frame as a whole stays within
/// [`MAX_DEPTH`]).
pub fn validate_at(text: &str, depth: usize) -> Result<(), JsonError> {
    let mut s = Scanner::new(text);
    let r = s.value(depth).and_then(|()| s.end());
    s.done(r)
}

/// What [`object_fields`] found besides the slots.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Bit `i`: `keys[i]` appeared more than once (the first 32 names; the caller decides).
    pub repeated: u32,
    /// Whether any string in the object (keys, values, nested) had an escape. Without one,
    /// every string value is exactly the text between its quotes.
    pub escapes: bool,
}

/// Reads a JSON object's members in one pass: the raw value of the member named `keys[i]`
/// goes to `slots[i]`. The whole text must be one object (whitespace around it allowed);
/// every value is validated, members with other names too.
pub fn object_fields<'a>(
    text: &'a str,
    keys: &[&str],
    slots: &mut [Option<&'a str>],
) -> Result<Fields, JsonError> {
    let mut repeated = 0u32;
    let mut s = Scanner::new(text);
    let r = s.members(&mut |key, raw| {
        for (i, (k, slot)) in keys.iter().zip(slots.iter_mut()).enumerate() {
            if same_key(k, &key) {
                if slot.is_some() {
                    repeated |= u32::try_from(i).map_or(0, |i| 1u32.checked_shl(i).unwrap_or(0));
                }
                *slot = Some(raw);
                return;
            }
        }
    });
    s.done(r)?;
    Ok(Fields {
        repeated,
        escapes: s.escapes,
    })
}

/// `a == b` for member names: lengths first, then a byte loop (names are short: a `memcmp`
/// call costs more than the compare).
#[inline(always)]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Splits a JSON object into its members, in order: each key (unescaped) with its value's raw
/// text. Duplicate keys are kept.
#[cfg(any(test, feature = "fuzzing"))]
pub fn object_members(text: &str) -> Result<Vec<(Cow<'_, str>, &str)>, JsonError> {
    let mut out = Vec::new();
    members(text, &mut |key, raw| out.push((key, raw)))?;
    Ok(out)
}

/// Calls `member` with each key (unescaped) and raw value of the object `text`, in order,
/// after validating the value. The whole text must be one object.
#[cfg(any(test, feature = "fuzzing"))]
fn members<'a>(
    text: &'a str,
    member: &mut dyn FnMut(Cow<'a, str>, &'a str),
) -> Result<(), JsonError> {
    let mut s = Scanner::new(text);
    let r = s.members(member);
    s.done(r)
}

/// A straight-line reader for a text of an expected shape, piece by piece: each step matches
/// and moves on, or answers `None` and the caller reads the text the general way. What a step
/// accepts is a subset of what the general reader accepts, with the same meaning.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) struct Expected<'a>(Scanner<'a>);

#[cfg(not(target_arch = "wasm32"))]
impl<'a> Expected<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Expected(Scanner::new(text))
    }

    /// Exactly the bytes of `literal`.
    pub(crate) fn literal(&mut self, literal: &'static str) -> Option<()> {
        self.0.literal(literal).ok()
    }

    /// A string with no escape and no control character: the text between its quotes.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        if self.0.peek() != Some(b'"') {
            return None;
        }
        self.0.plain_string()
    }

    /// An unsigned integer of 1 to 19 digits without a leading zero (so it fits a `u64`), not
    /// followed by a fraction or an exponent: a subset of what [`parse_u64`] reads, in one pass
    /// over the digits (`parse_u64` trims and scans them twice, which the event fast path
    /// would pay on every frame).
    pub(crate) fn integer(&mut self) -> Option<u64> {
        let start = self.0.pos;
        let mut n = 0u64;
        while let Some(d @ b'0'..=b'9') = self.0.peek() {
            n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.0.pos += 1;
        }
        let len = self.0.pos - start;
        let leading_zero = self.0.bytes.get(start) == Some(&b'0');
        let follows = matches!(self.0.peek(), Some(b'.' | b'e' | b'E'));
        ((1..=19).contains(&len) && !leading_zero && !follows).then_some(n)
    }

    /// One value, validated as the general reader does, nested `depth` containers deep: its text.
    pub(crate) fn value(&mut self, depth: usize) -> Option<&'a str> {
        self.0.skip_ws();
        let start = self.0.pos;
        self.0.value(depth).ok()?;
        Some(self.0.slice(start, self.0.pos))
    }

    /// Only whitespace follows.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.0.end().ok()
    }
}

/// Reads a JSON string (`raw` is its text, quotes included) into its value: borrowed from
/// `raw` when it has no escapes.
pub fn parse_str(raw: &str) -> Result<Cow<'_, str>, JsonError> {
    let mut s = Scanner::new(raw);
    let r = s.whole_string();
    s.done(r)
}

/// Reads a JSON string (`raw` is its text, quotes included) into its value.
#[cfg(any(test, feature = "fuzzing"))]
pub fn parse_string(raw: &str) -> Result<String, JsonError> {
    parse_str(raw).map(Cow::into_owned)
}

/// Reads a JSON number that is a non-negative integer fitting a `u64` (no fraction, no
/// exponent, as `serde_json` requires for a `u64` field).
pub fn parse_u64(raw: &str) -> Result<u64, JsonError> {
    let digits = trim_ws(raw);
    let bytes = digits.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(JsonError::new("expected an unsigned integer", 0));
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(JsonError::new("leading zero", 0));
    }
    bytes.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(JsonError::new("integer out of range", 0))
    })
}

/// Reads `true` or `false`.
pub fn parse_bool(raw: &str) -> Result<bool, JsonError> {
    match trim_ws(raw) {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(JsonError::new("expected a boolean", 0)),
    }
}

/// Whether `raw` is the JSON `null`.
pub fn is_null(raw: &str) -> bool {
    trim_ws(raw) == "null"
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` does (`"`, `\`, and control
/// characters; `\b \f \n \r \t` short, the rest as `\u00XX`). Runs are cut next to ASCII
/// bytes only, so every `get` below is `Some`.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Appends `n` in decimal.
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in buf.iter().skip(i) {
        out.push(char::from(d));
    }
}

/// `raw` without JSON whitespace around it (a byte loop: `trim_matches` links a char searcher).
fn trim_ws(raw: &str) -> &str {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = raw.as_bytes();
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    // Cut next to ASCII bytes: always a char boundary.
    raw.get(start..end).unwrap_or_default()
}

/// A cursor over the text's bytes (the text is `str`, so UTF-8 is already valid; only ASCII
/// bytes are ever matched, so every slice boundary is a char boundary).
/// The index of the first byte at or after `i` that ends a plain run inside a string: a quote,
/// a backslash or a control character (or the end). Eight bytes at a time (SWAR): strings are
/// most of what a frame is, and this is the scanner's hot loop.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // `(x - ONES) & !x & HIGH` is non-zero iff some byte of x is zero; with `ONES * n` in place
    // of `ONES` (n <= 128) iff some byte is below n.
    while let Some(chunk) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        let v = u64::from_le_bytes(chunk);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        let stop = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        let stop = stop & HIGH;
        if stop != 0 {
            // The lowest flagged byte is exact (a borrow only ever flags bytes above a match).
            return i + stop.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Scanning stopped at a problem; the scanner holds which and where ([`Scanner::failure`]).
/// A unit error keeps every `?` in the hot loops a register test.
struct Stop;

type Scan<T = ()> = Result<T, Stop>;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    failure: JsonError,
    /// Whether a string with an escape was read.
    escapes: bool,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            failure: JsonError::new("", 0),
            escapes: false,
        }
    }

    /// `text[start..end]`. Cuts are only ever made next to ASCII bytes, so they are always char
    /// boundaries; `get` keeps the panic path (and its formatting code) out of the binary.
    // Tiny and called per byte: inlined even at opt-level "z".
    #[inline(always)]
    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or_default()
    }

    /// Records `reason` at the cursor and stops.
    #[cold]
    fn fail(&mut self, reason: &'static str) -> Stop {
        self.failure = JsonError::new(reason, self.pos);
        Stop
    }

    /// What `r` stopped at, as the public error.
    fn done<T>(&self, r: Scan<T>) -> Result<T, JsonError> {
        r.map_err(|Stop| self.failure)
    }

    // Tiny and called per byte: inlined even at opt-level "z".
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    // Tiny and called per byte: inlined even at opt-level "z".
    #[inline(always)]
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Scan {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.fail(reason))
        }
    }

    // Tiny and called per byte: inlined even at opt-level "z".
    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The object at the cursor, member by member (see [`members`]); then only whitespace.
    fn members(&mut self, member: &mut dyn FnMut(Cow<'a, str>, &'a str)) -> Scan {
        self.skip_ws();
        self.expect(b'{', "expected an object")?;
        self.skip_ws();
        if !self.eat(b'}') {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.fail("expected a string key"));
                }
                let key = self.string()?;
                self.skip_ws();
                self.expect(b':', "expected `:`")?;
                self.skip_ws();
                let start = self.pos;
                self.value(1)?;
                member(key, self.slice(start, self.pos));
                self.skip_ws();
                if self.eat(b'}') {
                    break;
                }
                self.expect(b',', "expected `,` or `}`")?;
            }
        }
        self.end()
    }

    /// One string, whitespace around it allowed.
    fn whole_string(&mut self) -> Scan<Cow<'a, str>> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.fail("expected a string"));
        }
        let value = self.string()?;
        self.end()?;
        Ok(value)
    }

    /// Only whitespace may follow.
    fn end(&mut self) -> Scan {
        self.skip_ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.fail("trailing characters"))
        }
    }

    /// Skips one value (leading whitespace allowed) nested `depth` containers deep.
    fn value(&mut self, depth: usize) -> Scan {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self.container(depth, b'}', true),
            Some(b'[') => self.container(depth, b']', false),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => Err(self.fail("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str) -> Scan {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if rest.starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.fail("expected a value"))
        }
    }

    /// An object (`keyed`) or array, at the opening bracket.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Scan {
        if depth >= MAX_DEPTH {
            return Err(self.fail("nested too deep"));
        }
        self.pos += 1;
        self.skip_ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            if keyed {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.fail("expected a string key"));
                }
                self.string()?;
                self.skip_ws();
                self.expect(b':', "expected `:`")?;
            }
            self.value(depth + 1)?;
            self.skip_ws();
            if self.eat(close) {
                return Ok(());
            }
            self.expect(b',', "expected `,` or a closing bracket")?;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Scan {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fail("invalid number")),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.fail("invalid number"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        Ok(())
    }

    /// A string at its opening quote: borrowed when it has no escapes, else decoded.
    // The plain case (no escape: nearly every key and value) is a single SWAR run to the
    // closing quote, inlined into the callers natively (the browser build keeps one copy: size
    // first); escapes and errors take `string_slow`.
    #[cfg_attr(not(target_arch = "wasm32"), inline(always))]
    fn string(&mut self) -> Scan<Cow<'a, str>> {
        let start = self.pos + 1;
        match self.plain_string() {
            Some(plain) => Ok(Cow::Borrowed(plain)),
            None => self.string_slow(start),
        }
    }

    /// The string at its opening quote if it has no escape and no control character (one
    /// SWAR run to its closing quote): what its quotes enclose, the cursor after them. `None`
    /// leaves the cursor on the byte that ended the plain run (an escape, a control character,
    /// or the end of the text).
    #[cfg_attr(not(target_arch = "wasm32"), inline(always))]
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.pos + 1;
        let end = skip_plain(self.bytes, start);
        self.pos = end;
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        Some(self.slice(start, end))
    }

    /// The rest of a string that starts at `start` (after its quote) and has an escape, a
    /// control character or no end at the cursor.
    fn string_slow(&mut self, start: usize) -> Scan<Cow<'a, str>> {
        let mut decoded: Option<String> = None;
        let mut run = start;
        loop {
            self.pos = skip_plain(self.bytes, self.pos);
            let Some(b) = self.peek() else {
                return Err(self.fail("unterminated string"));
            };
            match b {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(match decoded {
                        None => Cow::Borrowed(self.slice(start, end)),
                        Some(mut out) => {
                            out.push_str(self.slice(run, end));
                            Cow::Owned(out)
                        }
                    });
                }
                b'\\' => {
                    self.escapes = true;
                    let out = decoded.get_or_insert_with(String::new);
                    out.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                    run = self.pos;
                }
                0..=0x1f => return Err(self.fail("control character in string")),
                _ => self.pos += 1,
            }
        }
    }

    /// The character an escape stands for; the cursor is after the backslash.
    fn escape(&mut self) -> Scan<char> {
        let Some(b) = self.peek() else {
            return Err(self.fail("unterminated string"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = match first {
                    0xd800..=0xdbff => {
                        if !(self.eat(b'\\') && self.eat(b'u')) {
                            return Err(self.fail("lone surrogate in escape"));
                        }
                        let second = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&second) {
                            return Err(self.fail("lone surrogate in escape"));
                        }
                        0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(self.fail("lone surrogate in escape")),
                    _ => first,
                };
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return Err(self.fail("invalid escape")),
                }
            }
            _ => return Err(self.fail("invalid escape")),
        })
    }

    fn hex4(&mut self) -> Scan<u32> {
        let mut n = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.fail("invalid escape")),
            };
            n = n * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
