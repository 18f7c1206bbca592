//! dkraid-ffi: placeholder, being written.
#![cfg_attr(target_os = "driverkit", no_std)]
