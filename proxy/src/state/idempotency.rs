//! Idempotency records in the shared stores: [`Store`] as an
//! [`IdempotencyStore`]. A claim asks the backend at once (the session
//! claims on a thread that may wait); completing and releasing a claim are
//! queued to the store's worker, like counter rollbacks, because they are
//! called from the relay of server answers.
//!
//! Backends keep one record per key, `<prefix>idem#<key hex>`: in flight
//! (with the claiming token, until its lease ends) or done (with the answer,
//! until the window ends). SQLite claims in an immediate transaction, Redis
//! with one Lua script; so of two proxies claiming one key, one wins.

use portcullis_core::counters::{StateError, UnixMillis};
use portcullis_core::idempotency::{Claim, IdemKey, IdempotencyStore};

use super::{Job, Store};

/// A queued completion or release.
#[derive(Debug)]
pub struct Settle {
    key: IdemKey,
    token: u64,
    /// Some: complete (with the answer when kept, until the expiry); None: release.
    done: Option<(Option<Vec<u8>>, UnixMillis)>,
}

impl Settle {
    /// Applies it to `store`.
    pub(super) fn apply(&self, store: &dyn IdempotencyStore) -> Result<(), StateError> {
        match &self.done {
            Some((answer, expires)) => {
                store.complete(&self.key, self.token, answer.as_deref(), *expires)
            }
            None => store.release(&self.key, self.token),
        }
    }
}

impl Store {
    fn queue(&self, settle: Settle) -> Result<(), StateError> {
        let sent = self
            .jobs()
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job::Idem(settle)).is_ok());
        if sent {
            Ok(())
        } else {
            Err(StateError("the store is closed".into()))
        }
    }
}

impl IdempotencyStore for Store {
    fn claim(&self, key: &IdemKey, now: UnixMillis, lease_ms: u64) -> Result<Claim, StateError> {
        let Some(b) = self.backend.idempotency() else {
            return Err(StateError("this store keeps no idempotency records".into()));
        };
        let r = b.claim(key, now, lease_ms);
        self.health(&r);
        r
    }

    fn complete(
        &self,
        key: &IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError> {
        self.queue(Settle {
            key: *key,
            token,
            done: Some((answer.map(<[u8]>::to_vec), expires)),
        })
    }

    fn release(&self, key: &IdemKey, token: u64) -> Result<(), StateError> {
        self.queue(Settle {
            key: *key,
            token,
            done: None,
        })
    }
}
