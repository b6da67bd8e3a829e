//! HAProxy's HTTP/2 module counters of a frontend (`show stat`'s `h2_*` columns):
//! frames received by kind, error frames sent, connection protocol errors, as the
//! flood guard reads each frame header passing under the h2 crate (a stream counts
//! at its first HEADERS). Stream protocol errors are not told apart: the h2 crate
//! resets malformed requests, which HAProxy 2.6 does not count as such either, and
//! ends the connection for the stream-state errors HAProxy counts.

use super::flood::{DATA, GOAWAY, HEADERS, RST_STREAM, SETTINGS_FRAME as SETTINGS};
use crate::stats::Counters;

const NO_ERROR: u32 = 0x0;
pub(super) const PROTOCOL_ERROR: u32 = 0x1;

/// A frame of `kind` on `stream` from the client.
pub(super) fn received(c: &Counters, kind: u8, stream: u32) {
    Counters::inc(match kind {
        HEADERS => &c.h2_headers_rcvd,
        // DATA on stream 0 is a connection error, not counted (as HAProxy).
        DATA if stream != 0 => &c.h2_data_rcvd,
        SETTINGS => &c.h2_settings_rcvd,
        RST_STREAM => &c.h2_rst_stream_rcvd,
        GOAWAY => &c.h2_goaway_rcvd,
        _ => return,
    });
}

/// A GOAWAY sent with `code`: on an error, counted; a protocol error, also as one.
pub(super) fn goaway_sent(c: &Counters, code: u32) {
    if code != NO_ERROR {
        Counters::inc(&c.h2_goaway_resp);
    }
    if code == PROTOCOL_ERROR {
        Counters::inc(&c.h2_conn_proto_err);
    }
}

/// A RST_STREAM sent with `code`: counted when it reports an error.
pub(super) fn reset_sent(c: &Counters, code: u32) {
    if code != NO_ERROR {
        Counters::inc(&c.h2_rst_stream_resp);
    }
}
