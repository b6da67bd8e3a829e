//! The request's unique id (`unique-id-format`): computed once per request, the first
//! time something asks for it (the `unique-id` fetch in a rule, `%ID` in a log line),
//! else once the `http-request` rules are done (where `unique-id-header` adds it), as
//! HAProxy 2.6 does. Kept in the transaction, its buffers reused request after request.

use std::cell::{Cell, RefCell};

use super::sample::Scratch;
use super::Ctx;

#[derive(Default)]
pub struct UniqueId {
    id: RefCell<Vec<u8>>,
    /// 0: not computed for this request; 1: being computed; 2: computed.
    state: Cell<u8>,
    /// Where the format is evaluated (apart from the caller's scratch, which may be
    /// in use by the expression that asked).
    scratch: RefCell<Scratch>,
}

impl std::fmt::Debug for UniqueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UniqueId")
            .field("state", &self.state.get())
            .finish()
    }
}

impl UniqueId {
    /// A new request: its id is to be computed afresh.
    pub fn reset(&self) {
        self.state.set(0);
    }

    /// Appends the request's id to `out` (computing it first if needed); `false` when
    /// the frontend has no `unique-id-format` (or the format asked for itself).
    pub fn write(ctx: &Ctx<'_>, out: &mut Vec<u8>) -> bool {
        Self::with(ctx, |id| id.map(|id| out.extend_from_slice(id)).is_some())
    }

    /// `f` on the request's id (computed first if needed; `None` when the frontend
    /// has no `unique-id-format`, or while the format asks for itself).
    pub fn with<R>(ctx: &Ctx<'_>, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let u = &ctx.txn.unique_id;
        match u.state.get() {
            2 => {}
            1 => return f(None),
            _ => {
                let Some(fmt) = ctx.world.and_then(|w| w.unique_id_format(ctx.frontend)) else {
                    return f(None);
                };
                u.state.set(1);
                {
                    let (Ok(mut id), Ok(mut s)) =
                        (u.id.try_borrow_mut(), u.scratch.try_borrow_mut())
                    else {
                        return f(None);
                    };
                    id.clear();
                    fmt.eval(ctx, None, &mut s, &mut id);
                }
                u.state.set(2);
            }
        }
        match u.id.try_borrow() {
            Ok(id) => f(Some(&id)),
            Err(_) => f(None),
        }
    }
}
