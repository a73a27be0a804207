//! Starting the processes of a distributed run on one machine, and watching them.

use crate::error::{Error, Result};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// `n` loopback addresses (`127.0.0.1:port`) whose ports were free a moment ago (each bound
/// and released; another program could take one in between, and the run then fails to
/// connect).
pub fn loopback_addresses(n: usize) -> Result<Vec<String>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::data("distributed run", format!("no free loopback port: {e}")))?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.to_string())
                .map_err(|e| Error::data("distributed run", e.to_string()))
        })
        .collect()
}

/// Starts `processes` processes (`command(p)` is process `p`'s command) and waits for all of
/// them. When one fails (a non-zero exit, or killed by a signal), the others get `grace` to
/// stop on their own (their workers lose the connection to it and stop) and are then killed;
/// the error names the first process that failed and how. Returns when every process has
/// exited.
pub fn launch(
    processes: usize,
    mut command: impl FnMut(usize) -> Command,
    grace: Duration,
) -> Result<()> {
    let mut children: Vec<Child> = Vec::with_capacity(processes);
    for p in 0..processes {
        match command(p).spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(Error::data(
                    "distributed run",
                    format!("cannot start process {p}: {e}"),
                ));
            }
        }
    }
    let mut status: Vec<Option<ExitStatus>> = vec![None; processes];
    let mut failed: Option<(usize, ExitStatus, Instant)> = None;
    loop {
        for (p, c) in children.iter_mut().enumerate() {
            if status[p].is_some() {
                continue;
            }
            match c.try_wait() {
                Ok(Some(s)) => {
                    status[p] = Some(s);
                    if !s.success() && failed.is_none() {
                        failed = Some((p, s, Instant::now()));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    stop(&mut children);
                    return Err(Error::data(
                        "distributed run",
                        format!("cannot watch process {p}: {e}"),
                    ));
                }
            }
        }
        let running = status.iter().filter(|s| s.is_none()).count();
        match failed {
            None if running == 0 => return Ok(()),
            Some((p, s, at)) if running == 0 || at.elapsed() >= grace => {
                stop(&mut children);
                return Err(Error::data(
                    "distributed run",
                    format!(
                        "process {p} of {processes} failed ({s}); {running} other process(es) \
                         still running were stopped"
                    ),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Kills and reaps every child still running.
fn stop(children: &mut [Child]) {
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}
