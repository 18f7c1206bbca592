//! Who may change the array: the decision behind the destructive admin commands (create,
//! delete, hot spare, rebuild).
//!
//! A key in the project's own namespace (`org.dkraid.admin.configure`) proves nothing by itself:
//! any locally signed binary can claim an unrestricted entitlement. So the client must also be
//! signed by the driver's own team: its `com.apple.developer.team-identifier` entitlement — a
//! restricted one, which the system only honours when a provisioning profile issued to that team
//! allows it (AMFI kills a process claiming it otherwise) — must equal the team the driver was
//! built for (the personality's `DkRaidAdminTeamIdentifier`, `$(DEVELOPMENT_TEAM)` in
//! Info.plist). A driver whose personality names no valid team grants nothing: fail closed.

/// The outcome of [`authorise`], with the C ABI's `DK_ADMIN_AUTH_*` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Authorisation {
    Granted = 0,
    /// The client does not hold `org.dkraid.admin.configure` as a boolean true.
    NoConfigureEntitlement = 1,
    /// The client has no `com.apple.developer.team-identifier` (unsigned, ad hoc, or not a string).
    NoTeamIdentifier = 2,
    /// Signed by another team than the driver's.
    WrongTeam = 3,
    /// The driver's personality names no valid team (missing, empty, an unexpanded `$(…)`
    /// build setting, or not 10 characters of A–Z and 0–9).
    DriverTeamMissing = 4,
}

impl Authorisation {
    pub fn granted(self) -> bool {
        self == Authorisation::Granted
    }

    /// A static, NUL-terminated explanation for logs.
    pub fn c_reason(self) -> &'static core::ffi::CStr {
        match self {
            Authorisation::Granted => c"granted: org.dkraid.admin.configure held, signed by the driver's team",
            Authorisation::NoConfigureEntitlement => c"read-only: no org.dkraid.admin.configure entitlement",
            Authorisation::NoTeamIdentifier => {
                c"read-only: the client has no com.apple.developer.team-identifier (not signed by a team)"
            }
            Authorisation::WrongTeam => c"read-only: the client is signed by another team than the driver's",
            Authorisation::DriverTeamMissing => {
                c"read-only: the personality has no valid DkRaidAdminTeamIdentifier (10 characters A-Z, 0-9)"
            }
        }
    }

    pub fn from_code(code: u32) -> Option<Authorisation> {
        Some(match code {
            0 => Authorisation::Granted,
            1 => Authorisation::NoConfigureEntitlement,
            2 => Authorisation::NoTeamIdentifier,
            3 => Authorisation::WrongTeam,
            4 => Authorisation::DriverTeamMissing,
            _ => return None,
        })
    }
}

/// Apple team identifiers are 10 characters of A–Z and 0–9.
pub fn is_team_identifier(id: &[u8]) -> bool {
    id.len() == 10 && id.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether a client may run destructive commands. `client_team` and `driver_team` are None
/// when absent.
pub fn authorise(
    holds_configure: bool,
    client_team: Option<&[u8]>,
    driver_team: Option<&[u8]>,
) -> Authorisation {
    let Some(driver) = driver_team.filter(|t| is_team_identifier(t)) else {
        return Authorisation::DriverTeamMissing;
    };
    if !holds_configure {
        return Authorisation::NoConfigureEntitlement;
    }
    match client_team {
        None | Some([]) => Authorisation::NoTeamIdentifier,
        Some(t) if t == driver => Authorisation::Granted,
        Some(_) => Authorisation::WrongTeam,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: &[u8] = b"DKRAID0001";

    #[test]
    fn only_the_drivers_own_team_holding_the_key_is_granted() {
        assert_eq!(authorise(true, Some(TEAM), Some(TEAM)), Authorisation::Granted);
        // The project key alone, as any locally signed binary can claim it.
        assert_eq!(authorise(true, None, Some(TEAM)), Authorisation::NoTeamIdentifier);
        assert_eq!(authorise(true, Some(b""), Some(TEAM)), Authorisation::NoTeamIdentifier);
        assert_eq!(authorise(true, Some(b"OTHERTEAM1"), Some(TEAM)), Authorisation::WrongTeam);
        // A prefix or a case change is another team.
        assert_eq!(authorise(true, Some(b"DKRAID000"), Some(TEAM)), Authorisation::WrongTeam);
        assert_eq!(authorise(true, Some(b"dkraid0001"), Some(TEAM)), Authorisation::WrongTeam);
        // The team without the key.
        assert_eq!(authorise(false, Some(TEAM), Some(TEAM)), Authorisation::NoConfigureEntitlement);
    }

    #[test]
    fn a_driver_without_a_valid_team_grants_nothing() {
        for driver in [
            None,
            Some(&b""[..]),
            Some(b"$(DEVELOPMENT_TEAM)"),
            Some(b"DKRAID00"),
            Some(b"dkraid0001"),
        ] {
            assert_eq!(
                authorise(true, Some(TEAM), driver),
                Authorisation::DriverTeamMissing,
                "{driver:?}"
            );
            // Even a client claiming the same invalid value.
            assert_eq!(authorise(true, driver, driver), Authorisation::DriverTeamMissing);
        }
    }

    #[test]
    fn codes_round_trip_and_every_outcome_has_a_reason() {
        for code in 0..5 {
            let a = Authorisation::from_code(code).unwrap();
            assert_eq!(a as u32, code);
            assert!(!a.c_reason().to_bytes().is_empty());
        }
        assert_eq!(Authorisation::from_code(5), None);
    }
}
