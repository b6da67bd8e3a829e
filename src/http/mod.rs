//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route, with an index of exact hosts: host_index), canned replies (reply), WebSocket tunnels (tunnel), local answers and head edits (local).

mod bufpool;
mod conn;
pub mod framing;
pub mod head;
pub mod host_index;
mod local;
pub mod reply;
mod response;
mod route;
mod tunnel;

pub use conn::serve;
