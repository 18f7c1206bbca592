//! Bring-up stages (DRIVERKIT.md §9): each narrow enough that a failure points at one step.

use core::fmt;
use core::str::FromStr;

use crate::abi;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stage {
    /// 0: every method succeeds, no hardware touched, no targets.
    Pipeline = abi::DK_STAGE_PIPELINE,
    /// 1: one emulated disk; reads fail MEDIUM ERROR 11/00, writes succeed and are discarded.
    FakeBlock = abi::DK_STAGE_FAKE_BLOCK,
    /// 2: hardware initialised, one firmware read of a fixed address, no targets.
    SingleIo = abi::DK_STAGE_SINGLE_IO,
    /// 3: firmware volumes exposed as targets, all I/O to the firmware.
    Full = abi::DK_STAGE_FULL,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Pipeline, Stage::FakeBlock, Stage::SingleIo, Stage::Full];

    /// The name used in the personality (`BringUpStage`) and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Pipeline => "pipeline",
            Stage::FakeBlock => "fake-block",
            Stage::SingleIo => "single-io",
            Stage::Full => "full",
        }
    }

    pub const fn number(self) -> u32 {
        self as u32
    }

    pub const fn from_number(n: u32) -> Option<Stage> {
        match n {
            abi::DK_STAGE_PIPELINE => Some(Stage::Pipeline),
            abi::DK_STAGE_FAKE_BLOCK => Some(Stage::FakeBlock),
            abi::DK_STAGE_SINGLE_IO => Some(Stage::SingleIo),
            abi::DK_STAGE_FULL => Some(Stage::Full),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown stage name. Its message lists the valid ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStage<'a>(pub &'a str);

impl fmt::Display for UnknownStage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnknownStage: {:?} is not a bring-up stage; valid stages are ", self.0)?;
        for (i, stage) in Stage::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(stage.name())?;
        }
        Ok(())
    }
}

impl Stage {
    /// Parse a stage name exactly (no case folding: the personality is written by us).
    pub fn parse(name: &str) -> Result<Stage, UnknownStage<'_>> {
        Stage::ALL.into_iter().find(|s| s.name() == name).ok_or(UnknownStage(name))
    }
}

impl FromStr for Stage {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::parse(s).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_round_trips() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.name()), Ok(stage));
            assert_eq!(Stage::from_number(stage.number()), Some(stage));
            assert_eq!(stage.to_string(), stage.name());
        }
        assert_eq!(Stage::parse("fake-block"), Ok(Stage::FakeBlock));
        assert_eq!(Stage::from_number(4), None);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        for bad in ["", "Pipeline", "fake_block", "stage1", "full ", "single-io\0"] {
            let err = Stage::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("UnknownStage"), "{msg}");
            assert!(
                msg.ends_with("valid stages are pipeline, fake-block, single-io, full"),
                "{msg}"
            );
        }
    }
}
