//! The streamed analysis's [`Workers`] on timely-dataflow: each collective step (a pass, a
//! shared table, an agreement on errors) is one small dataflow whose only operator is timely's
//! `exchange`, routing `(destination worker, unit, kind, bytes)` messages; the receiving
//! worker collects them and, on the leader, adds the parts up in unit order.
//!
//! Every worker builds the same dataflows in the same order (the streamed analysis calls the
//! same collective steps on every worker), which is what timely requires. A worker that fails
//! stops computing units, finishes the step, and every worker learns of the failure in the
//! agreement that ends each pass, so all return an error at the same step instead of waiting
//! for one another. A process that dies makes timely's network threads of its peers panic
//! ("timely communication error"), and the worker threads stop with it.

use crate::error::{Error, Result};
use crate::stream::wire::Wire;
use crate::stream::workers::UnitParts;
use crate::stream::{ExchangeReport, Workers};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Exchange, Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

/// A message: destination worker, unit (or sender), kind, encoded payload.
type Msg = (u64, u64, u8, Vec<u8>);
/// A unit's part for the leader, or a shared value.
const PART: u8 = 0;
/// A part addressed to a given worker.
const ROUTED: u8 = 1;
/// A failure, described.
const FAILED: u8 = 2;
/// Longest sleep between two looks at the network while waiting.
const PARK: Duration = Duration::from_millis(10);

type Inbox = Rc<RefCell<Vec<Msg>>>;
/// The input of a collective step's dataflow.
type In = InputHandle<u64, CapacityContainerBuilder<Vec<Msg>>>;

/// One timely worker of a distributed streamed analysis.
pub(super) struct TimelyWorkers<'w> {
    worker: &'w mut Worker,
    /// Worker threads per process (worker `i` is in process `i / threads`).
    threads: usize,
    reports: Vec<ExchangeReport>,
}

impl<'w> TimelyWorkers<'w> {
    pub(super) fn new(worker: &'w mut Worker, threads: usize) -> Self {
        TimelyWorkers {
            worker,
            threads: threads.max(1),
            reports: Vec::new(),
        }
    }

    /// A new dataflow: an input of messages, exchanged to their destination and collected.
    fn channel(&mut self) -> (In, ProbeHandle<u64>, Inbox) {
        let inbox: Inbox = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&inbox);
        let (input, probe) = self.worker.dataflow::<u64, _, _>(move |scope| {
            let (input, stream) = scope.new_input::<Vec<Msg>>();
            let probe = stream
                .exchange(|m: &Msg| m.0)
                .inspect(move |m: &Msg| sink.borrow_mut().push(m.clone()))
                .probe()
                .0;
            (input, probe)
        });
        (input, probe, inbox)
    }

    /// The counters of step `name`.
    fn report(&mut self, name: &str) -> &mut ExchangeReport {
        let i = match self.reports.iter().position(|r| r.pass == name) {
            Some(i) => i,
            None => {
                self.reports.push(ExchangeReport {
                    pass: name.to_string(),
                    ..Default::default()
                });
                self.reports.len() - 1
            }
        };
        &mut self.reports[i]
    }

    /// Sends `m`, counting what leaves this worker and this process.
    fn send(&mut self, name: &str, input: &mut In, m: Msg) {
        let (me, threads) = (self.index() as u64, self.threads as u64);
        if m.0 != me {
            let len = m.3.len() as u64;
            let r = self.report(name);
            r.messages += 1;
            r.bytes += len;
            if m.0 / threads != me / threads {
                r.network_bytes += len;
            }
        }
        input.send(m);
    }

    /// Closes `input` and steps until every message of the dataflow has arrived.
    fn finish(&mut self, input: In, probe: &ProbeHandle<u64>) {
        drop(input);
        while !probe.done() {
            self.worker.step_or_park(Some(PARK));
        }
    }
}

fn remote(sender: u64, msg: &[u8]) -> Error {
    Error::data(
        "distributed run",
        format!("worker {sender}: {}", String::from_utf8_lossy(msg)),
    )
}

impl Workers for TimelyWorkers<'_> {
    fn index(&self) -> usize {
        self.worker.index()
    }
    fn peers(&self) -> usize {
        self.worker.peers()
    }

    fn pass_owned<P, R>(
        &mut self,
        name: &'static str,
        n_units: usize,
        owner: &dyn Fn(usize) -> usize,
        compute: &mut dyn FnMut(usize) -> Result<UnitParts<P, R>>,
        fold: &mut dyn FnMut(usize, P) -> Result<()>,
        take: &mut dyn FnMut(usize, R) -> Result<()>,
    ) -> Result<()>
    where
        P: Wire + Send + 'static,
        R: Wire + Send + 'static,
    {
        let t0 = Instant::now();
        let (me, peers, leader) = (self.index(), self.peers(), self.is_leader());
        let (mut input, probe, inbox) = self.channel();
        let mut own_error: Option<Error> = None;
        let mut next = 0usize;
        let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        // Takes the routed parts as they come; folds the leader's parts in unit order.
        let mut drain = |own_error: &mut Option<Error>| {
            let msgs: Vec<Msg> = std::mem::take(&mut *inbox.borrow_mut());
            for (_, unit, kind, bytes) in msgs {
                if own_error.is_some() {
                    continue;
                }
                if kind == ROUTED {
                    if let Err(e) = R::from_bytes(&bytes).and_then(|r| take(unit as usize, r)) {
                        *own_error = Some(e);
                    }
                } else {
                    pending.insert(unit, bytes);
                }
            }
            while own_error.is_none() {
                let Some(b) = pending.remove(&(next as u64)) else {
                    break;
                };
                match P::from_bytes(&b).and_then(|p| fold(next, p)) {
                    Ok(()) => next += 1,
                    Err(e) => *own_error = Some(e),
                }
            }
        };
        for u in (0..n_units).filter(|&u| owner(u) % peers == me) {
            if own_error.is_some() {
                break;
            }
            match compute(u) {
                Ok((p, routed)) => {
                    self.send(name, &mut input, (0, u as u64, PART, p.to_bytes()));
                    for (d, r) in routed {
                        let label = r.report_as().unwrap_or(name);
                        self.send(
                            label,
                            &mut input,
                            (d as u64, u as u64, ROUTED, r.to_bytes()),
                        );
                    }
                }
                Err(e) => own_error = Some(e),
            }
            input.flush();
            self.worker.step();
            drain(&mut own_error);
        }
        drop(input);
        while !probe.done() {
            self.worker.step_or_park(Some(PARK));
            drain(&mut own_error);
        }
        drain(&mut own_error);
        if leader {
            let secs = t0.elapsed().as_secs_f64();
            self.report(name).seconds += secs;
        }
        let missing = (leader && own_error.is_none() && next != n_units)
            .then(|| format!("{name}: {} of {n_units} parts arrived", next));
        let others = self.agree(
            name,
            own_error
                .as_ref()
                .map(|e| e.to_string())
                .or(missing.clone()),
        );
        if let Some(e) = own_error {
            return Err(e);
        }
        if let Some(m) = missing {
            return Err(Error::data("distributed run", m));
        }
        others
    }

    fn share<T: Wire + Clone + Send + 'static>(
        &mut self,
        name: &'static str,
        value: Option<Result<T>>,
    ) -> Result<T> {
        let (mut input, probe, inbox) = self.channel();
        let peers = self.peers() as u64;
        let mine = if self.is_leader() {
            match value {
                Some(Ok(v)) => {
                    let b = v.to_bytes();
                    for d in 1..peers {
                        self.send(name, &mut input, (d, 0, PART, b.clone()));
                    }
                    Some(Ok(v))
                }
                Some(Err(e)) => {
                    let b = e.to_string().into_bytes();
                    for d in 1..peers {
                        self.send(name, &mut input, (d, 0, FAILED, b.clone()));
                    }
                    Some(Err(e))
                }
                None => Some(Err(Error::data(
                    "distributed run",
                    format!("the leader has nothing to share for {name}"),
                ))),
            }
        } else {
            None
        };
        self.finish(input, &probe);
        if let Some(r) = mine {
            return r;
        }
        let msgs = std::mem::take(&mut *inbox.borrow_mut());
        match msgs.as_slice() {
            [(_, _, PART, b)] => T::from_bytes(b),
            [(_, s, FAILED, b)] => Err(remote(*s, b)),
            _ => Err(Error::data(
                "distributed run",
                format!(
                    "{name}: {} messages from the leader instead of one",
                    msgs.len()
                ),
            )),
        }
    }

    fn agree(&mut self, name: &'static str, error: Option<String>) -> Result<()> {
        let (mut input, probe, inbox) = self.channel();
        let (me, peers) = (self.index() as u64, self.peers() as u64);
        let (kind, b) = match error {
            Some(e) => (FAILED, e.into_bytes()),
            None => (PART, Vec::new()),
        };
        for d in (0..peers).filter(|&d| d != me) {
            self.send(name, &mut input, (d, me, kind, b.clone()));
        }
        self.finish(input, &probe);
        let mut msgs = std::mem::take(&mut *inbox.borrow_mut());
        if msgs.len() as u64 != peers - 1 {
            return Err(Error::data(
                "distributed run",
                format!("{name}: {} of {} workers answered", msgs.len(), peers - 1),
            ));
        }
        msgs.sort_by_key(|m| m.1);
        match msgs.iter().find(|m| m.2 == FAILED) {
            Some((_, s, _, b)) => Err(remote(*s, b)),
            None => Ok(()),
        }
    }

    fn exchange_reports(&mut self) -> Result<Vec<ExchangeReport>> {
        let (mut input, probe, inbox) = self.channel();
        let me = self.index() as u64;
        if me != 0 {
            let rows: Vec<(String, u64, u64, u64)> = self
                .reports
                .iter()
                .map(|r| (r.pass.clone(), r.messages, r.bytes, r.network_bytes))
                .collect();
            input.send((0, me, PART, rows.to_bytes()));
        }
        self.finish(input, &probe);
        if me != 0 {
            return Ok(Vec::new());
        }
        let mut msgs = std::mem::take(&mut *inbox.borrow_mut());
        msgs.sort_by_key(|m| m.1);
        for (_, _, _, b) in msgs {
            for (pass, messages, bytes, network) in Vec::<(String, u64, u64, u64)>::from_bytes(&b)?
            {
                let r = self.report(&pass);
                r.messages += messages;
                r.bytes += bytes;
                r.network_bytes += network;
            }
        }
        Ok(std::mem::take(&mut self.reports))
    }
}
