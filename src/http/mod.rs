//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route), rules on heads (rules: the rule language applied to requests and responses,
//! edit: the head edits they make), canned replies (reply), WebSocket tunnels (tunnel),
//! admin pages (local).

mod bufpool;
mod conn;
mod edit;
pub mod framing;
pub mod head;
mod local;
pub mod reply;
mod response;
mod route;
pub mod rules;
mod tunnel;

pub use conn::serve;
