//! Forked test processes, shared by the live tests and the kernel-matrix guest checker
//! (`xtask/src/vm/guest.rs` includes this file by path). Only std and libc.

use std::io;

/// A forked child process, killed and reaped on drop.
pub struct Proc {
    pub pid: i32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill and waitpid on our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

impl Proc {
    /// Waits for the child to exit and returns its wait status.
    pub fn wait(self) -> i32 {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        std::mem::forget(self);
        status
    }
}

/// A handler that does nothing: the signal is caught and delivered.
pub extern "C" fn noop_handler(_: libc::c_int) {}

/// What a forked child sets up before it waits for signals.
#[derive(Clone, Copy, Default)]
pub struct Setup<'a> {
    /// Signals to catch with a handler that does nothing (SA_RESTART).
    pub handle: &'a [i32],
    /// Signals to block.
    pub block: &'a [i32],
    /// Signals to ignore (SIG_IGN).
    pub ignore: &'a [i32],
}

/// Forks a child that installs `setup`, reports ready through a pipe, then sleeps in pause()
/// until killed. The child only makes async-signal-safe calls.
pub fn spawn(setup: Setup) -> io::Result<Proc> {
    let mut fds = [0; 2];
    // SAFETY: plain syscalls; after fork the child only calls async-signal-safe functions
    // (sigaction, sigprocmask, write, close, pause).
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            libc::close(fds[0]);
            for &sig in setup.handle {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = noop_handler as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            for &sig in setup.ignore {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_IGN;
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in setup.block {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::write(fds[1], b"r".as_ptr().cast(), 1);
            libc::close(fds[1]);
            loop {
                libc::pause();
            }
        }
        libc::close(fds[1]);
        let proc = Proc { pid };
        let mut b = [0u8; 1];
        let n = libc::read(fds[0], b.as_mut_ptr().cast(), 1);
        libc::close(fds[0]);
        if n != 1 {
            return Err(io::Error::other("the forked child did not get ready"));
        }
        Ok(proc)
    }
}

/// Forks a child that drops to uid/gid 65534, sends `sig` to `target` and exits with the errno
/// kill(2) returned; returns that errno (0 on success).
pub fn unprivileged_kill(target: i32, sig: i32) -> io::Result<i32> {
    // SAFETY: the child only calls setgroups/setgid/setuid/kill/_exit (async-signal-safe
    // syscalls); the errno is read through its async-signal-safe location.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                libc::_exit(100);
            }
            let rc = libc::kill(target, sig);
            libc::_exit(if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) == 100 {
            return Err(io::Error::other(format!(
                "the unprivileged child could not drop to uid 65534 (wait status {status:#x})"
            )));
        }
        Ok(libc::WEXITSTATUS(status))
    }
}
