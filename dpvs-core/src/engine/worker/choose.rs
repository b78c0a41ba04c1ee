//! Choosing the real server of a new connection: the client's persistence template when the
//! service is persistent and has one for it, else the service's scheduler, with this
//! worker's view of the real servers' load where the service needs one.

use crate::drop::DropReason;
use crate::engine::conn::Tuple;
use crate::engine::persist::{Claim, TemplateKey};
use crate::engine::sched::{ClientKey, NoLoad};
use crate::engine::snapshot::{Persistence, Service};
use crate::packet::Frame;

use super::{Ctx, Worker};

impl<F: Frame> Worker<F> {
    /// The index in `svc.rs` of the real server for the client's new connection `t`.
    pub(super) fn choose(
        &mut self,
        ctx: &Ctx<'_>,
        svc: &Service,
        t: &Tuple,
    ) -> Result<u16, DropReason> {
        match svc.persistence {
            None => self.schedule(svc, t),
            Some(p) => self.choose_persistent(ctx, svc, p, t),
        }
    }

    /// The scheduler's pick.
    fn schedule(&mut self, svc: &Service, t: &Tuple) -> Result<u16, DropReason> {
        let Some(cursors) = self.cursors.get_mut(svc.slot as usize) else {
            return Err(DropReason::NoRealServer);
        };
        if cursors.0 == u32::MAX {
            cursors.0 = svc.schedule.start_cursor(self.id, self.workers);
        }
        let client = ClientKey {
            addr: t.src.to_bits(),
            port: t.sport,
            proto: t.proto.0,
            vip: t.dst.to_bits(),
            vport: t.dport,
        };
        let pick = if svc.needs_load {
            let view = self.loads.get(svc.slot);
            view.and_then(|v| svc.schedule.pick(&mut cursors.0, &client, v))
        } else {
            svc.schedule.pick(&mut cursors.0, &client, &NoLoad)
        };
        pick.ok_or(DropReason::NoRealServer)
    }

    /// A persistent service's choice: the live template's real server (while it is still one
    /// of the service's, even drained: IPVS's default), else the scheduler's pick, recorded as
    /// the client's template (or the one another worker recorded at the same moment).
    fn choose_persistent(
        &mut self,
        ctx: &Ctx<'_>,
        svc: &Service,
        p: Persistence,
        t: &Tuple,
    ) -> Result<u16, DropReason> {
        let templates = &ctx.snap.templates;
        let key = TemplateKey {
            svc_slot: svc.slot as u16,
            client: t.src.to_bits() & p.mask,
        };
        let held = templates.get(key, ctx.now_ms);
        if let Some(&i) = held.and_then(|rs| svc.rs_by_slot.get(&u32::from(rs))) {
            templates.touch(key, ctx.now_ms, p.timeout_ms);
            return Ok(i);
        }
        let i = self.schedule(svc, t)?;
        let rs_slot = svc.rs[usize::from(i)].slot as u16;
        match templates.claim(key, rs_slot, ctx.now_ms, p.timeout_ms) {
            Claim::Holds(won) => Ok(svc.rs_by_slot.get(&u32::from(won)).copied().unwrap_or(i)),
            Claim::Full => {
                self.counters().templates_full.add(1);
                Ok(i)
            }
        }
    }
}
