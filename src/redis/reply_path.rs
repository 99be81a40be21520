//! The reply path without sockets, for the fuzzer: the relay's shape check, then the decoder
//! the client uses, on the same bytes. Beyond "never crashes", it checks that whatever the
//! scanner lets through decodes no deeper than the scanner allows and ends where the scanner
//! thinks it ends: a disagreement there would let a reply past the check with a shape the
//! check never saw.

use redis_protocol::resp2::types::OwnedFrame as Resp2Frame;
use redis_protocol::resp3::types::{DecodedFrame, OwnedFrame as Resp3Frame, Resp3Frame as _};

use super::resp_shape::{ShapeScanner, MAX_DEPTH};

/// Runs `bytes` through the shape check and, if it passes, through the client's decoder;
/// panics where the two disagree.
pub fn check(bytes: &[u8]) {
    if ShapeScanner::default().feed(bytes).is_err() {
        return;
    }
    // Fed one decoded reply at a time: after each it must be between replies.
    let mut scanner = ShapeScanner::default();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        // As fred's codec: RESP2 first, RESP3 only when RESP2 fails.
        let (depth, used) = match redis_protocol::resp2::decode::decode(rest) {
            Ok(Some((frame, used))) => (resp2_depth(&frame), used),
            Ok(None) => return,
            Err(_) => match redis_protocol::resp3::decode::streaming::decode(rest) {
                Ok(Some((DecodedFrame::Complete(frame), used))) => (resp3_depth(&frame), used),
                Ok(Some((DecodedFrame::Streaming(_), _))) => {
                    panic!("a streamed frame passed the shape check at byte {at}")
                }
                // Incomplete, or an error the client reports as `protocol`.
                Ok(None) | Err(_) => return,
            },
        };
        assert!(
            depth <= MAX_DEPTH,
            "a reply {depth} deep passed the shape check at byte {at}"
        );
        assert!(
            scanner.feed(&rest[..used]).is_ok() && scanner.between_replies(),
            "the decoder ends a reply at byte {} where the shape check does not",
            at + used
        );
        at += used;
    }
}

/// Aggregates open at the deepest point of `frame`.
fn resp2_depth(frame: &Resp2Frame) -> usize {
    match frame {
        Resp2Frame::Array(items) => 1 + items.iter().map(resp2_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Aggregates open at the deepest point of `frame`, attributes included.
fn resp3_depth(frame: &Resp3Frame) -> usize {
    let attributes = frame.attributes().map_or(0, |attributes| {
        1 + attributes
            .iter()
            .map(|(key, value)| resp3_depth(key).max(resp3_depth(value)))
            .max()
            .unwrap_or(0)
    });
    let own = match frame {
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => {
            1 + data.iter().map(resp3_depth).max().unwrap_or(0)
        }
        Resp3Frame::Set { data, .. } => 1 + data.iter().map(resp3_depth).max().unwrap_or(0),
        Resp3Frame::Map { data, .. } => {
            1 + data
                .iter()
                .map(|(key, value)| resp3_depth(key).max(resp3_depth(value)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    };
    own.max(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_real_replies_and_refuses_deep_ones_before_decoding() {
        check(b"$5\r\nhello\r\n+OK\r\n*2\r\n:1\r\n%1\r\n+a\r\n_\r\n");
        check(b"|1\r\n+k\r\n+v\r\n*1\r\n:1\r\n");
        // Deep enough to overflow the decoder if it ever got there.
        let mut deep = b"*1\r\n".repeat(200_000);
        deep.extend_from_slice(b":1\r\n");
        check(&deep);
    }
}
