//! CPU time from getrusage(2): user and system time apart, to microseconds. Unlike wall
//! time, it does not grow when other processes load the machine, and the system part
//! shows what the read path costs.
// getrusage has no safe wrapper in rustix or std; this module is the bench's only unsafe.
#![allow(unsafe_code)]

use std::ops::Sub;

#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Cpu {
    pub user: f64,
    pub sys: f64,
}

impl Cpu {
    pub fn total(self) -> f64 {
        self.user + self.sys
    }
}

impl Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user - o.user,
            sys: self.sys - o.sys,
        }
    }
}

fn get(who: libc::c_int) -> Cpu {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is valid, writable memory for one `struct rusage`, which is all that
    // getrusage writes; `who` is one of the RUSAGE_* constants.
    let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zero is a valid bit pattern for every field, and getrusage succeeded.
    let ru = unsafe { ru.assume_init() };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cpu {
        user: s(ru.ru_utime),
        sys: s(ru.ru_stime),
    }
}

/// CPU time of the calling thread so far.
pub fn thread() -> Cpu {
    get(libc::RUSAGE_THREAD)
}

/// CPU time of this process (all its threads) so far.
pub fn process() -> Cpu {
    get(libc::RUSAGE_SELF)
}

/// CPU time of every child process waited for so far.
pub fn children() -> Cpu {
    get(libc::RUSAGE_CHILDREN)
}
