//! The simulated Mac's clocks (DRIVERKIT.md §10).
//!
//! Virtual time is kept in nanoseconds. What a dext reads depends on the clock it asks:
//! `clock_gettime_nsec_np(CLOCK_UPTIME_RAW)` is nanoseconds, but `mach_absolute_time()` and the
//! `time` argument of `InterruptOccurred` are **mach ticks**, and on Apple silicon a tick is
//! 125/3 ns (a 24 MHz counter: `mach_timebase_info` answers numer 125, denom 3). On an Intel
//! Mac the timebase is 1/1, which is why code that treats ticks as nanoseconds works there and
//! fires its timeouts 41.7 times late on Apple silicon. The test-bed models Apple silicon by
//! default (`--timebase intel` for 1/1).
//!
//! Timer clocks are the SDK's values (xnu `iokit/DriverKit/IOTimerDispatchSource.iig`):
//! `kIOTimerClockMachAbsoluteTime` 0xC8 and `kIOTimerClockMachContinuousTime` 0xC4 take
//! deadlines in ticks; `kIOTimerClockUptimeRaw` 0x88 and `kIOTimerClockMonotonicRaw` 0x84 in
//! nanoseconds; `kIOTimerClockRealTime`/`WallTime` 0x80 are epoch clocks the simulated Mac does
//! not offer to a dext's timers.

/// `mach_timebase_info`: one tick is `numer / denom` nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timebase {
    pub numer: u32,
    pub denom: u32,
}

impl Timebase {
    /// Apple silicon: a 24 MHz tick (125/3 ns).
    pub const APPLE_SILICON: Timebase = Timebase { numer: 125, denom: 3 };
    /// Intel Macs: a tick is a nanosecond.
    pub const INTEL: Timebase = Timebase { numer: 1, denom: 1 };

    /// Ticks at virtual time `ns` (rounded down, as the hardware counter is).
    pub fn ns_to_ticks(self, ns: u64) -> u64 {
        (u128::from(ns) * u128::from(self.denom) / u128::from(self.numer)) as u64
    }

    /// Nanoseconds of `ticks` (rounded up, so a deadline is never earlier than asked).
    pub fn ticks_to_ns(self, ticks: u64) -> u64 {
        let ns = (u128::from(ticks) * u128::from(self.numer)).div_ceil(u128::from(self.denom));
        ns.min(u128::from(u64::MAX)) as u64
    }

    pub fn name(self) -> &'static str {
        if self == Self::INTEL {
            "intel (1/1)"
        } else if self == Self::APPLE_SILICON {
            "apple-silicon (125/3)"
        } else {
            "custom"
        }
    }
}

/// The units a timer clock id takes its deadline in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockUnits {
    Ticks,
    Nanoseconds,
}

pub const K_IO_TIMER_CLOCK_UPTIME_RAW: u64 = 0x88;
pub const K_IO_TIMER_CLOCK_MONOTONIC_RAW: u64 = 0x84;
pub const K_IO_TIMER_CLOCK_REAL_TIME: u64 = 0x80;
pub const K_IO_TIMER_CLOCK_MACH_ABSOLUTE_TIME: u64 = 0xC8;
pub const K_IO_TIMER_CLOCK_MACH_CONTINUOUS_TIME: u64 = 0xC4;

/// What `WakeAtTime(options, …)` reads its deadline as; None: not a clock a dext's timer takes.
pub fn clock_units(options: u64) -> Option<(ClockUnits, &'static str)> {
    match options {
        K_IO_TIMER_CLOCK_MACH_ABSOLUTE_TIME => {
            Some((ClockUnits::Ticks, "kIOTimerClockMachAbsoluteTime"))
        }
        K_IO_TIMER_CLOCK_MACH_CONTINUOUS_TIME => {
            Some((ClockUnits::Ticks, "kIOTimerClockMachContinuousTime"))
        }
        K_IO_TIMER_CLOCK_UPTIME_RAW => Some((ClockUnits::Nanoseconds, "kIOTimerClockUptimeRaw")),
        K_IO_TIMER_CLOCK_MONOTONIC_RAW => {
            Some((ClockUnits::Nanoseconds, "kIOTimerClockMonotonicRaw"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_silicon_ticks_are_24_mhz() {
        let tb = Timebase::APPLE_SILICON;
        assert_eq!(tb.ns_to_ticks(1_000_000_000), 24_000_000);
        assert_eq!(tb.ticks_to_ns(24_000_000), 1_000_000_000);
        // 100 ms taken as ticks is 4.17 s: the mistake this module exists to expose.
        assert_eq!(tb.ticks_to_ns(100_000_000), 4_166_666_667);
    }

    #[test]
    fn conversions_round_toward_safety_and_never_overflow() {
        let tb = Timebase::APPLE_SILICON;
        // A deadline in ticks never lands before the nanosecond it names.
        for ns in [0u64, 1, 41, 42, 999, 123_456_789] {
            assert!(tb.ticks_to_ns(tb.ns_to_ticks(ns)) <= ns, "{ns}");
            assert!(tb.ticks_to_ns(tb.ns_to_ticks(ns) + 1) > ns, "{ns}");
        }
        assert_eq!(tb.ticks_to_ns(u64::MAX), u64::MAX);
        assert_eq!(Timebase::INTEL.ns_to_ticks(u64::MAX), u64::MAX);
    }

    #[test]
    fn sdk_clock_ids() {
        assert_eq!(clock_units(0xC8).unwrap().0, ClockUnits::Ticks);
        assert_eq!(clock_units(0x88).unwrap().0, ClockUnits::Nanoseconds);
        // The values the model used to have are not clocks.
        assert!(clock_units(0).is_none());
        assert!(clock_units(1).is_none());
        assert!(clock_units(K_IO_TIMER_CLOCK_REAL_TIME).is_none());
    }
}
