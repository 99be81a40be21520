//! An incremental check of a reply's shape (nesting depth and element count), fed the bytes
//! the relay passes on, before the client decodes any of them.
//!
//! fred decodes and converts a reply recursively, one stack frame per level of nesting: a
//! reply of `*1\r\n` 2,000 times (8 KB, far under the byte budget) overflows the stack and
//! aborts the whole process. The byte budget cannot see this, so the relay also runs every
//! reply through [`ShapeScanner`], and cuts the connection before the client sees a reply
//! that is too deep, declares too many elements or is not RESP.
//!
//! The scanner reads the union of RESP2 and RESP3, as fred does (it decodes RESP2 and falls
//! back to RESP3). It is stricter than the decoder wherever that is free, so that whenever it
//! accepts a reply, the decoder sees the same frame boundaries: lengths are plain digits,
//! a bulk payload must end in CRLF, and the streamed forms Redis never sends (`?` lengths,
//! `;` chunks, `.` ends, inline `HELLO`) are refused.

/// The most aggregates (arrays, maps, sets, pushes, attributes) open at once in one reply.
/// Replies the exporter asks for are at most 2 deep (`SENTINEL MASTERS`: an array of arrays
/// of bulk strings; `INFO`, `CLUSTER NODES`: one bulk string), so 8 is generous; the stack
/// fred uses per level makes even a few hundred levels a risk on a runtime thread.
pub const MAX_DEPTH: usize = 8;

/// The most elements one reply may declare, counting a map or attribute entry as two.
/// `SENTINEL MASTERS` holds about 40 per master, so this allows some 2,500 masters. A decoded
/// element costs fred about 100 bytes while it may cost the server 3 on the wire (`_\r\n`), so
/// this, not the byte budget, is what bounds the memory one reply takes to decode (~10 MB).
pub const MAX_ELEMENTS: u32 = 100_000;

/// The longest length header read, in digits; more than any `u64` needs.
const MAX_DIGITS: u8 = 20;

/// Why a reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// More than [`MAX_DEPTH`] aggregates open at once.
    #[error("reply nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than the scanner's element limit declared in one reply.
    #[error("reply declares more than {0} elements")]
    TooManyElements(u32),
    /// Not RESP, or a form Redis never sends.
    #[error("reply is not valid RESP: {0}")]
    Malformed(&'static str),
}

/// What the next byte means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The type byte of the next value.
    Type,
    /// The length line of a header (`$`, `*`, `%` …), `kind` being its type byte.
    Length {
        kind: u8,
        value: u64,
        digits: u8,
        negative: bool,
    },
    /// The `\n` after a length line's `\r`.
    LengthEnd {
        kind: u8,
        value: u64,
        negative: bool,
    },
    /// A simple line (`+`, `-`, `:`, `_`, `#`, `,`, `(`) up to its CRLF; `cr` after a `\r`.
    Line { cr: bool },
    /// `left` bytes of a bulk payload.
    Payload { left: u64 },
    /// The `\r` after a payload.
    PayloadCr,
    /// The `\n` after a payload.
    PayloadLf,
}

/// One open aggregate: how many elements it still awaits.
#[derive(Debug, Clone, Copy, Default)]
struct Open {
    left: u32,
    /// An attribute precedes a value rather than being one: it fills no slot in its parent.
    attribute: bool,
}

/// Feeds on a connection's reply bytes in chunks of any size and refuses the first reply
/// whose shape is out of bounds. Small and allocation-free: every relay holds one.
#[derive(Debug, Clone)]
pub struct ShapeScanner {
    state: State,
    open: [Open; MAX_DEPTH],
    depth: usize,
    /// Elements declared so far by the reply being read.
    elements: u32,
    max_elements: u32,
    /// The last value was an attribute, which must be followed by a non-attribute value.
    after_attribute: bool,
    /// The value being read follows an attribute (so the decoder reads it as RESP3).
    described: bool,
    failed: Option<ShapeError>,
}

impl Default for ShapeScanner {
    fn default() -> Self {
        Self::new(MAX_ELEMENTS)
    }
}

impl ShapeScanner {
    /// A scanner allowing `max_elements` per reply and [`MAX_DEPTH`] levels.
    pub fn new(max_elements: u32) -> Self {
        ShapeScanner {
            state: State::Type,
            open: [Open::default(); MAX_DEPTH],
            depth: 0,
            elements: 0,
            max_elements,
            after_attribute: false,
            described: false,
            failed: None,
        }
    }

    /// Reads the next bytes. Once it has refused a reply it refuses everything after it:
    /// the connection is to be closed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ShapeError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let mut at = 0;
        while at < bytes.len() {
            match self.step(&bytes[at..]) {
                Ok(used) => at += used,
                Err(error) => {
                    self.failed = Some(error);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Whether every reply fed so far is complete (nothing half-read).
    pub fn between_replies(&self) -> bool {
        self.failed.is_none()
            && self.state == State::Type
            && self.depth == 0
            && !self.after_attribute
    }

    /// Consumes a prefix of `bytes` (at least one byte) and returns its length.
    fn step(&mut self, bytes: &[u8]) -> Result<usize, ShapeError> {
        let byte = bytes[0];
        match self.state {
            State::Type => self.start(byte)?,
            State::Length {
                kind,
                value,
                digits,
                negative,
            } => {
                self.state = match byte {
                    b'0'..=b'9' if digits < MAX_DIGITS => State::Length {
                        kind,
                        value: value
                            .checked_mul(10)
                            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                            .ok_or(ShapeError::Malformed("length overflows"))?,
                        digits: digits + 1,
                        negative,
                    },
                    b'-' if digits == 0 && !negative => State::Length {
                        kind,
                        value,
                        digits,
                        negative: true,
                    },
                    b'\r' if digits > 0 => State::LengthEnd {
                        kind,
                        value,
                        negative,
                    },
                    _ => return Err(ShapeError::Malformed("bad length")),
                };
            }
            State::LengthEnd {
                kind,
                value,
                negative,
            } => {
                if byte != b'\n' {
                    return Err(ShapeError::Malformed("length without CRLF"));
                }
                self.header(kind, value, negative)?;
            }
            State::Line { cr } => {
                // Only a CRLF ends a line (a lone `\r` or `\n` is content), as in the decoder;
                // skip straight to the next `\r` or `\n`.
                if cr && byte == b'\n' {
                    self.state = State::Type;
                    self.value_done();
                    return Ok(1);
                }
                let skip = bytes
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(bytes.len());
                if skip > 0 {
                    self.state = State::Line { cr: false };
                    return Ok(skip);
                }
                self.state = State::Line { cr: byte == b'\r' };
            }
            State::Payload { left } => {
                let take = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::PayloadCr
                } else {
                    State::Payload { left }
                };
                return Ok(take);
            }
            State::PayloadCr => {
                if byte != b'\r' {
                    return Err(ShapeError::Malformed("bulk payload without CRLF"));
                }
                self.state = State::PayloadLf;
            }
            State::PayloadLf => {
                if byte != b'\n' {
                    return Err(ShapeError::Malformed("bulk payload without CRLF"));
                }
                self.state = State::Type;
                self.value_done();
            }
        }
        Ok(1)
    }

    /// A type byte.
    fn start(&mut self, kind: u8) -> Result<(), ShapeError> {
        if kind == b'|' && self.after_attribute {
            return Err(ShapeError::Malformed("attribute after attribute"));
        }
        self.described = self.after_attribute;
        self.after_attribute = false;
        self.state = match kind {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => State::Line { cr: false },
            b'$' | b'=' | b'!' | b'*' | b'%' | b'~' | b'>' | b'|' => State::Length {
                kind,
                value: 0,
                digits: 0,
                negative: false,
            },
            _ => return Err(ShapeError::Malformed("unknown type byte")),
        };
        Ok(())
    }

    /// A complete length header.
    fn header(&mut self, kind: u8, value: u64, negative: bool) -> Result<(), ShapeError> {
        if negative {
            // `$-1` and `*-1` are RESP2's nulls, decoded as such; every other negative
            // length is refused, and so are these after an attribute: the decoder reads
            // that reply as RESP3, where `-1` starts a stream (found by the fuzzer).
            if value == 1 && (kind == b'$' || kind == b'*') && !self.described {
                self.state = State::Type;
                self.value_done();
                return Ok(());
            }
            return Err(ShapeError::Malformed("negative length"));
        }
        match kind {
            b'$' | b'!' | b'=' => {
                // A verbatim string starts with a 3-letter format and `:`.
                if kind == b'=' && value < 4 {
                    return Err(ShapeError::Malformed("verbatim string shorter than 4"));
                }
                self.state = if value == 0 {
                    State::PayloadCr
                } else {
                    State::Payload { left: value }
                };
                Ok(())
            }
            _ => {
                let per_entry = if kind == b'%' || kind == b'|' { 2 } else { 1 };
                let declared = value.saturating_mul(per_entry);
                let elements = u64::from(self.elements).saturating_add(declared);
                if elements > u64::from(self.max_elements) {
                    return Err(ShapeError::TooManyElements(self.max_elements));
                }
                if self.depth == MAX_DEPTH {
                    return Err(ShapeError::TooDeep);
                }
                // Fits in u32: bounded by max_elements just above.
                self.elements = elements as u32;
                self.state = State::Type;
                let attribute = kind == b'|';
                if declared == 0 {
                    // Complete already, without ever being open.
                    if attribute {
                        self.after_attribute = true;
                    } else {
                        self.value_done();
                    }
                } else {
                    self.open[self.depth] = Open {
                        left: declared as u32,
                        attribute,
                    };
                    self.depth += 1;
                }
                Ok(())
            }
        }
    }

    /// A value ended: it fills a slot in the aggregate around it, which may end in turn and
    /// fill a slot in its own parent.
    fn value_done(&mut self) {
        while self.depth > 0 {
            let top = &mut self.open[self.depth - 1];
            top.left -= 1;
            if top.left > 0 {
                return;
            }
            self.depth -= 1;
            if top.attribute {
                // An attribute precedes the value it describes: that value fills the slot.
                self.after_attribute = true;
                return;
            }
        }
        // A whole reply ended: the next one has its own element budget.
        self.elements = 0;
    }
}

#[cfg(test)]
#[path = "resp_shape_tests.rs"]
mod tests;
