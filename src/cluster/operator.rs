//! Operators' server states across nodes (`shared`): the hash `PREFIX:operator`
//! (field `BACKEND/SERVER`, value `STATE WEIGHT`), events `op NODE BACKEND/SERVER
//! STATE WEIGHT` (the value travels with them). A (re)connecting node fills the fields
//! nobody wrote yet with its own states.

use std::sync::Arc;

use super::shared::{Apply, Shared};
use crate::control::AdminState;
use crate::control::Core;

pub struct Operator(Arc<Core>);

pub fn sync(core: Arc<Core>) -> Shared<Operator> {
    Shared::new(Operator(core), "operator", "op").value_in_event()
}

/// A local change: its field and value.
pub fn change(backend: &str, server: &str, state: AdminState, weight: u32) -> (String, String) {
    (
        format!("{backend}/{server}"),
        format!("{} {weight}", state.word()),
    )
}

/// `STATE WEIGHT` → both.
fn parse_value(v: &str) -> Option<(AdminState, u32)> {
    let (s, w) = v.split_once(' ')?;
    Some((AdminState::from_word(s)?, w.parse().ok()?))
}

impl Apply for Operator {
    fn apply(&self, field: &str, value: &str) -> bool {
        let (Some((b, s)), Some((state, weight))) = (field.split_once('/'), parse_value(value))
        else {
            return false;
        };
        self.0.apply_shared(b, s, state, weight)
    }

    fn fill(&self) -> Vec<(String, String)> {
        self.0
            .operator_states()
            .into_iter()
            .map(|(b, s, state, weight)| (format!("{b}/{s}"), format!("{state} {weight}")))
            .collect()
    }
}
