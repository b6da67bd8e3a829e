//! Variables (`set-var`, `unset-var`, `var()`): scopes `proc`, `sess`, `txn`, `req`,
//! `res`, typed values. Names are numbered when the config is read (`Registry`), so a
//! request finds its variables by index; each slot keeps its byte buffer from one
//! request to the next, so setting a variable allocates nothing once warm.
//!
//! `proc` variables live per shard (thread), not per process: HAProxy shares them
//! between threads under a lock, which ringlb's request path never takes. A value set
//! on one shard is seen by the connections of that shard only.

use std::cell::RefCell;
use std::net::IpAddr;

use super::sample::{Data, Smp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Proc,
    Sess,
    Txn,
    Req,
    Res,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "proc" => Scope::Proc,
            "sess" => Scope::Sess,
            "txn" => Scope::Txn,
            "req" => Scope::Req,
            "res" => Scope::Res,
            _ => return None,
        })
    }
}

/// A variable, numbered at config time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VarId {
    pub scope: Scope,
    pub index: u16,
}

/// Every variable name the config mentions.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    names: Vec<(Scope, String)>,
}

impl Registry {
    /// `txn.name` → its id (registered on first use). HAProxy's rule: a scope, a dot,
    /// then letters, digits, `.` and `_`.
    pub fn id(&mut self, full: &str) -> Result<VarId, String> {
        let (scope, name) = full
            .split_once('.')
            .and_then(|(s, n)| Some((Scope::parse(s)?, n)))
            .ok_or_else(|| {
                format!("invalid variable name '{full}': expected a scope (proc, sess, txn, req, res), a dot and a name")
            })?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            return Err(format!(
                "invalid variable name '{full}': only letters, digits, '.' and '_' after the scope"
            ));
        }
        if let Some(i) = self
            .names
            .iter()
            .position(|(s, n)| *s == scope && n == name)
        {
            return Ok(VarId {
                scope,
                index: i as u16,
            });
        }
        if self.names.len() >= u16::MAX as usize {
            return Err("too many variables".into());
        }
        self.names.push((scope, name.to_string()));
        Ok(VarId {
            scope,
            index: (self.names.len() - 1) as u16,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, id: VarId) -> &str {
        self.names
            .get(id.index as usize)
            .map_or("", |(_, n)| n.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    #[default]
    Unset,
    Bool,
    Int,
    Ip,
    Str,
    Bin,
}

/// One variable's value; its buffer is kept when it is unset.
#[derive(Debug, Default)]
pub struct Slot {
    kind: Kind,
    int: i64,
    ip: Option<IpAddr>,
    bytes: Vec<u8>,
}

impl Clone for Slot {
    fn clone(&self) -> Self {
        Slot {
            kind: self.kind,
            int: self.int,
            ip: self.ip,
            bytes: self.bytes.clone(),
        }
    }

    /// Into the slot's own buffer: an HTTP/2 stream leaving its variables to its
    /// connection (`Txn::leave_shared_vars`) allocates nothing once warm.
    fn clone_from(&mut self, source: &Self) {
        self.kind = source.kind;
        self.int = source.int;
        self.ip = source.ip;
        self.bytes.clone_from(&source.bytes);
    }
}

impl Slot {
    pub fn get(&self) -> Option<Smp<'_>> {
        Some(match self.kind {
            Kind::Unset => return None,
            Kind::Bool => Smp::Bool(self.int != 0),
            Kind::Int => Smp::Int(self.int),
            Kind::Ip => Smp::Ip(self.ip?),
            Kind::Str => Smp::Str(Data::Ref(&self.bytes)),
            Kind::Bin => Smp::Bin(Data::Ref(&self.bytes)),
        })
    }

    /// Stores a sample whose bytes (if any) are `bytes`.
    pub fn set(&mut self, smp: &Smp<'_>, bytes: &[u8]) {
        match smp {
            Smp::Bool(b) => {
                self.kind = Kind::Bool;
                self.int = i64::from(*b);
            }
            Smp::Int(i) => {
                self.kind = Kind::Int;
                self.int = *i;
            }
            Smp::Ip(a) => {
                self.kind = Kind::Ip;
                self.ip = Some(*a);
            }
            Smp::Str(_) | Smp::Bin(_) => {
                self.kind = if matches!(smp, Smp::Str(_)) {
                    Kind::Str
                } else {
                    Kind::Bin
                };
                self.bytes.clear();
                self.bytes.extend_from_slice(bytes);
            }
        }
    }

    pub fn unset(&mut self) {
        self.kind = Kind::Unset;
    }
}

/// The variables of one connection (sess) and its current request (txn, req, res):
/// one slot per registered name, whatever its scope (proc slots stay unused here).
#[derive(Debug, Default)]
pub struct Store {
    slots: Vec<Slot>,
}

impl Clone for Store {
    fn clone(&self) -> Self {
        Store {
            slots: self.slots.clone(),
        }
    }

    /// Slot by slot, each into its own buffer (a derived `clone_from` would clone anew).
    fn clone_from(&mut self, source: &Self) {
        self.slots.clone_from(&source.slots);
    }
}

impl Store {
    /// Sized for a config's registry; every value unset.
    pub fn reset_all(&mut self, len: usize) {
        self.slots.resize_with(len, Slot::default);
        self.slots.truncate(len);
        for s in &mut self.slots {
            s.unset();
        }
    }

    /// Some value is set (of any scope).
    pub fn any_set(&self) -> bool {
        self.slots.iter().any(|s| !matches!(s.kind, Kind::Unset))
    }

    /// A new request: `txn`, `req` and `res` values are forgotten, `sess` ones stay.
    pub fn reset_txn(&mut self, reg: &Registry) {
        for ((scope, _), slot) in reg.names.iter().zip(self.slots.iter_mut()) {
            if matches!(scope, Scope::Txn | Scope::Req | Scope::Res) {
                slot.unset();
            }
        }
    }

    pub fn get(&self, id: VarId) -> Option<Smp<'_>> {
        if id.scope == Scope::Proc {
            return None;
        }
        self.slots.get(id.index as usize)?.get()
    }

    pub fn slot(&mut self, id: VarId) -> Option<&mut Slot> {
        self.slots.get_mut(id.index as usize)
    }
}

thread_local! {
    /// This shard's `proc` variables, by name (they outlive config reloads).
    static PROC: RefCell<Vec<(String, Slot)>> = const { RefCell::new(Vec::new()) };
}

/// Reads a `proc` variable into `out` (its bytes) and returns its kind as a sample
/// whose bytes, if any, are `out`'s.
pub fn proc_get(name: &str, out: &mut Vec<u8>) -> Option<Smp<'static>> {
    PROC.with(|p| {
        let p = p.borrow();
        let slot = &p.iter().find(|(n, _)| n == name)?.1;
        let smp = slot.get()?;
        Some(match smp {
            Smp::Str(_) | Smp::Bin(_) => {
                out.clear();
                out.extend_from_slice(&slot.bytes);
                if matches!(smp, Smp::Str(_)) {
                    Smp::Str(Data::Buf)
                } else {
                    Smp::Bin(Data::Buf)
                }
            }
            Smp::Bool(b) => Smp::Bool(b),
            Smp::Int(i) => Smp::Int(i),
            Smp::Ip(a) => Smp::Ip(a),
        })
    })
}

pub fn proc_set(name: &str, smp: &Smp<'_>, bytes: &[u8]) {
    PROC.with(|p| {
        let mut p = p.borrow_mut();
        match p.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.set(smp, bytes),
            None => {
                let mut s = Slot::default();
                s.set(smp, bytes);
                p.push((name.to_string(), s));
            }
        }
    })
}

pub fn proc_unset(name: &str) {
    PROC.with(|p| {
        if let Some((_, s)) = p.borrow_mut().iter_mut().find(|(n, _)| n == name) {
            s.unset();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store copied into one that was warm keeps the destination's buffers: what an
    /// HTTP/2 stream leaves to its connection after each request allocates nothing.
    #[test]
    fn clone_from_copies_values_into_the_slots_own_buffers() {
        let mut src = Store::default();
        src.reset_all(2);
        src.slot(VarId {
            scope: Scope::Sess,
            index: 0,
        })
        .unwrap()
        .set(&Smp::Str(Data::Ref(b"first")), b"first");
        src.slot(VarId {
            scope: Scope::Sess,
            index: 1,
        })
        .unwrap()
        .set(&Smp::Int(7), &[]);
        let mut dst = Store::default();
        dst.reset_all(2);
        dst.slot(VarId {
            scope: Scope::Sess,
            index: 0,
        })
        .unwrap()
        .set(&Smp::Str(Data::Ref(&[b'x'; 64])), &[b'x'; 64]);
        let buf = dst.slots[0].bytes.as_ptr();
        dst.clone_from(&src);
        assert_eq!(
            dst.slots[0].bytes.as_ptr(),
            buf,
            "a new buffer was allocated"
        );
        assert!(matches!(
            dst.get(VarId {
                scope: Scope::Sess,
                index: 0
            }),
            Some(Smp::Str(Data::Ref(b"first")))
        ));
        assert!(matches!(
            dst.get(VarId {
                scope: Scope::Sess,
                index: 1
            }),
            Some(Smp::Int(7))
        ));
    }

    #[test]
    fn registry_and_store() {
        let mut r = Registry::default();
        let a = r.id("txn.a").unwrap();
        let s = r.id("sess.s").unwrap();
        assert_eq!(r.id("txn.a").unwrap(), a);
        assert!(r.id("nope.a").is_err());
        assert!(r.id("txn.a-b").is_err());
        assert!(r.id("txn.").is_err());
        let mut st = Store::default();
        st.reset_all(r.len());
        assert!(st.get(a).is_none());
        st.slot(a).unwrap().set(&Smp::Str(Data::Buf), b"hello");
        st.slot(s).unwrap().set(&Smp::Int(3), &[]);
        match st.get(a) {
            Some(Smp::Str(Data::Ref(b))) => assert_eq!(b, b"hello"),
            other => panic!("{other:?}"),
        }
        st.reset_txn(&r);
        assert!(st.get(a).is_none());
        assert!(matches!(st.get(s), Some(Smp::Int(3))));
        proc_set("p", &Smp::Int(9), &[]);
        let mut out = Vec::new();
        assert!(matches!(proc_get("p", &mut out), Some(Smp::Int(9))));
        proc_unset("p");
        assert!(proc_get("p", &mut out).is_none());
    }
}
