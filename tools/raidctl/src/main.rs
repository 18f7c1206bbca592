//! `raidctl`: dkraid's RAID admin CLI. See `docs/RAIDCTL.md` and `raidctl --help`.

use std::io::Write;
use std::process::ExitCode;

use raidctl::cli::{self, Invocation, Parsed};
use raidctl::error::{Error, ErrorKind, ADMIN_ENTITLEMENT, DEFAULT_TEAM, TEAM_ENTITLEMENT};
use raidctl::transport::Transport;
use raidctl::{run, Client};

fn transport(inv: &Invocation) -> Result<Box<dyn Transport>, Error> {
    if let Some(path) = &inv.socket {
        #[cfg(unix)]
        {
            // What a copy of raidctl signed by a team would hold: the admin key, and the team
            // identifier the system adds (an unsigned copy holds neither).
            let team = inv.team_id.as_deref().unwrap_or(DEFAULT_TEAM);
            let entitlements = if inv.unentitled {
                vec![]
            } else {
                vec![ADMIN_ENTITLEMENT.to_string(), format!("{TEAM_ENTITLEMENT}={team}")]
            };
            return Ok(Box::new(raidctl::transport::SocketTransport::new(path, entitlements)));
        }
        #[cfg(not(unix))]
        {
            return Err(Error::new(
                ErrorKind::NoDriver,
                format!("--socket {} needs Unix sockets, which this system lacks", path.display()),
            ));
        }
    }
    #[cfg(target_os = "macos")]
    {
        if inv.unentitled || inv.team_id.is_some() {
            eprintln!(
                "raidctl: --unentitled and --team-id apply to --socket only; IOKit sees this \
                 program's own signature and entitlements"
            );
        }
        Ok(Box::new(raidctl::iokit::IoKitTransport::new()))
    }
    #[cfg(not(target_os = "macos"))]
    {
        Err(Error::new(
            ErrorKind::NoDriver,
            "no driver here: the IOKit transport exists on macOS only; talk to the test-bed \
             with --socket PATH (start it with `dkraid-sim serve --socket PATH`)",
        ))
    }
}

fn main_inner(inv: &Invocation) -> Result<(), Error> {
    let mut client = Client::open(transport(inv)?)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    run::execute(&mut client, &inv.command, inv.json, &mut lock)
}

fn main() -> ExitCode {
    let inv = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("raidctl {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(e) => {
            eprintln!("raidctl: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match main_inner(&inv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind == ErrorKind::OutputClosed => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raidctl: {e}");
            if inv.json && e.kind != ErrorKind::Usage {
                let status = e.status.and_then(dkraid_core::admin::status::name);
                let j = serde_json::json!({
                    "error": { "exit_code": e.exit_code(), "message": e.message, "status": status }
                });
                // stdout may be gone too; the exit code still says what happened.
                let _ = writeln!(std::io::stdout(), "{j}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
