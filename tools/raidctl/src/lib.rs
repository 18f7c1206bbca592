//! `raidctl`, dkraid's RAID admin CLI (StorCLI vocabulary), as a library: the test-bed's
//! socket protocol ([`sockwire`]), which `dkraid-sim serve` speaks as well.

pub mod sockwire;
