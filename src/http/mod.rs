//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route), the phases around a request (phases: captures, rules, use_backend,
//! X-Forwarded-For, response rules), rule lists on heads (rules) and the head edits
//! they make (edit), canned replies (reply), WebSocket tunnels (tunnel),
//! admin pages (local).

mod bufpool;
pub use bufpool::figures as buffer_figures;
mod conn;
mod edit;
pub mod framing;
pub mod head;
mod local;
mod phases;
pub mod reply;
mod response;
mod route;
pub mod rules;
mod tunnel;

pub use conn::serve;
