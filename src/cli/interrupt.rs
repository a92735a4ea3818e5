//! Ctrl-C for the long commands (`tune`, `fleet train`): the first SIGINT sets a flag that the
//! command's runs read as a cancel request (they end at their next step, finished work is kept
//! and reported); a second ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; `what` names what a Ctrl-C would lose without it (said if it cannot be
/// installed).
pub fn stop_on_ctrl_c(command: &str, what: &str) {
    // SAFETY: the action only touches an atomic and calls `_exit`, both async-signal-safe.
    #[allow(unsafe_code)]
    let registered = unsafe {
        signal_hook_registry::register(libc::SIGINT, || {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                libc::_exit(130);
            }
        })
    };
    if let Err(e) = registered {
        eprintln!("{command}: Ctrl-C will end it without {what} ({e})");
    }
}

/// True once Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
