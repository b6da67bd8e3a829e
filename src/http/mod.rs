//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route), canned replies (reply), WebSocket tunnels (tunnel), local answers and head edits (local).

mod bufpool;
pub use bufpool::figures as buffer_figures;
mod conn;
pub mod framing;
pub mod head;
mod local;
pub mod reply;
mod response;
mod route;
mod tunnel;

pub use conn::serve;
