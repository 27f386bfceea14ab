//! systemd's notify protocol (`Type=notify`): READY, RELOADING, STOPPING and the watchdog,
//! sent as datagrams to `$NOTIFY_SOCKET`. Does nothing when not run by systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one state line; failures are logged and otherwise ignored (systemd may be gone).
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        tracing::debug!(message = "sd_notify failed.", state, error = %e);
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when systemd asks for it (and
/// the request is for this process, per `$WATCHDOG_PID`).
pub(crate) fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
