//! `IOReturn` (`kern_return_t`): the status every DriverKit call and every C ABI entry point
//! returns. A newtype over the raw value, not a Rust enum: any 32-bit value can come back from
//! the platform and must survive the round trip.

use core::fmt;

/// An IOReturn value. `Display` prints the name and the hex value, e.g.
/// `kIOReturnBadArgument (0xe00002c2)`; unknown values print as `IOReturn(0x...)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct IOReturn(pub i32);

/// `iokit_common_err(code)`: system iokit, sub-system common.
const fn common(code: u32) -> IOReturn {
    IOReturn((0xe000_0000_u32 | code) as i32)
}

macro_rules! ioreturn_names {
    ($($name:ident = $value:expr;)*) => {
        impl IOReturn {
            $(
                #[allow(non_upper_case_globals)]
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: IOReturn = $value;
            )*

            /// The SDK name of a known value.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $value.0 => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The SDK name as a NUL-terminated string, for the C++ side's logs.
            pub const fn c_name(self) -> Option<&'static core::ffi::CStr> {
                match self.0 {
                    $(v if v == $value.0 => Some(
                        match core::ffi::CStr::from_bytes_with_nul(
                            concat!(stringify!($name), "\0").as_bytes()
                        ) {
                            Ok(c) => c,
                            Err(_) => panic!("names have no interior NUL"),
                        }
                    ),)*
                    _ => None,
                }
            }

            /// Every named value, for tables and tests.
            pub const ALL: &'static [IOReturn] = &[$($value,)*];
        }
    };
}

ioreturn_names! {
    kIOReturnSuccess = IOReturn(0);
    kIOReturnError = common(0x2bc);
    kIOReturnNoMemory = common(0x2bd);
    kIOReturnNoResources = common(0x2be);
    kIOReturnIPCError = common(0x2bf);
    kIOReturnNoDevice = common(0x2c0);
    kIOReturnNotPrivileged = common(0x2c1);
    kIOReturnBadArgument = common(0x2c2);
    kIOReturnExclusiveAccess = common(0x2c5);
    kIOReturnUnsupported = common(0x2c7);
    kIOReturnVMError = common(0x2c8);
    kIOReturnInternalError = common(0x2c9);
    kIOReturnIOError = common(0x2ca);
    kIOReturnNotOpen = common(0x2cd);
    kIOReturnNotAligned = common(0x2d0);
    kIOReturnDMAError = common(0x2d4);
    kIOReturnBusy = common(0x2d5);
    kIOReturnTimeout = common(0x2d6);
    kIOReturnOffline = common(0x2d7);
    kIOReturnNotReady = common(0x2d8);
    kIOReturnNotAttached = common(0x2d9);
    kIOReturnNoSpace = common(0x2db);
    kIOReturnNotPermitted = common(0x2e2);
    kIOReturnUnderrun = common(0x2e7);
    kIOReturnOverrun = common(0x2e8);
    kIOReturnDeviceError = common(0x2e9);
    kIOReturnNoCompletion = common(0x2ea);
    kIOReturnAborted = common(0x2eb);
    kIOReturnNotResponding = common(0x2ed);
    kIOReturnNotFound = common(0x2f0);
    kIOReturnInvalid = common(0x1);
}

impl IOReturn {
    /// The raw value as the unsigned number Apple's headers and logs print.
    pub const fn bits(self) -> u32 {
        self.0 as u32
    }

    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for success, the value itself otherwise.
    pub const fn into_result(self) -> Result<(), IOReturn> {
        if self.is_success() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl From<u32> for IOReturn {
    fn from(bits: u32) -> Self {
        IOReturn(bits as i32)
    }
}

impl fmt::Display for IOReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#010x})", self.bits()),
            None => write!(f, "IOReturn({:#010x})", self.bits()),
        }
    }
}

impl fmt::Debug for IOReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_drivers_meet_have_their_sdk_numbers() {
        // DRIVERKIT.md §6.
        assert_eq!(IOReturn::kIOReturnError.bits(), 0xe00002bc);
        assert_eq!(IOReturn::kIOReturnNoMemory.bits(), 0xe00002bd);
        assert_eq!(IOReturn::kIOReturnBadArgument.bits(), 0xe00002c2);
        assert_eq!(IOReturn::kIOReturnNotReady.bits(), 0xe00002d8);
        assert_eq!(IOReturn::kIOReturnUnsupported.bits(), 0xe00002c7);
        // The rest the core uses.
        assert_eq!(IOReturn::kIOReturnSuccess.bits(), 0);
        assert_eq!(IOReturn::kIOReturnNoResources.bits(), 0xe00002be);
        assert_eq!(IOReturn::kIOReturnTimeout.bits(), 0xe00002d6);
        assert_eq!(IOReturn::kIOReturnAborted.bits(), 0xe00002eb);
        assert_eq!(IOReturn::kIOReturnNotPermitted.bits(), 0xe00002e2);
        assert_eq!(IOReturn::kIOReturnOverrun.bits(), 0xe00002e8);
        assert_eq!(IOReturn::kIOReturnUnderrun.bits(), 0xe00002e7);
        assert_eq!(IOReturn::kIOReturnDeviceError.bits(), 0xe00002e9);
        assert_eq!(IOReturn::kIOReturnDMAError.bits(), 0xe00002d4);
        assert_eq!(IOReturn::kIOReturnInvalid.bits(), 0xe0000001);
    }

    #[test]
    fn display_prints_name_and_hex() {
        assert_eq!(IOReturn::kIOReturnBadArgument.to_string(), "kIOReturnBadArgument (0xe00002c2)");
        assert_eq!(IOReturn::kIOReturnSuccess.to_string(), "kIOReturnSuccess (0x00000000)");
        assert_eq!(IOReturn::from(0xe0001234).to_string(), "IOReturn(0xe0001234)");
        assert_eq!(format!("{:?}", IOReturn::kIOReturnNotReady), "kIOReturnNotReady (0xe00002d8)");
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, a) in IOReturn::ALL.iter().enumerate() {
            for b in &IOReturn::ALL[i + 1..] {
                assert_ne!(a, b, "{a} and {b} share a value");
            }
            let name = a.name().expect("every listed value has a name");
            assert_eq!(a.c_name().unwrap().to_str().unwrap(), name);
            assert!(name.starts_with("kIOReturn"), "{name}");
            assert!(a.to_string().starts_with(name));
        }
    }

    #[test]
    fn into_result() {
        assert_eq!(IOReturn::kIOReturnSuccess.into_result(), Ok(()));
        assert_eq!(IOReturn::kIOReturnAborted.into_result(), Err(IOReturn::kIOReturnAborted));
        assert!(!IOReturn::kIOReturnError.is_success());
    }
}
