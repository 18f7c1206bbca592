//! `dkraid-sim iscsi` over loopback with a small initiator built here: discovery, login,
//! INQUIRY, a write read back through the whole stack (kernel model, dext, core, firmware,
//! RAID), residuals, a malformed PDU, logout, and the report.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use dkraid_testbed::iscsi::pdu::{encode_text, op, parse_text, Pdu};

const TARGET: &str = "iqn.2025-01.org.dkraid:sim.t0";

struct Sim {
    child: Child,
    addr: String,
}

impl Sim {
    // The child is returned inside the Sim, whose stop() waits for it.
    #[allow(clippy::zombie_processes)]
    fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dkraid-sim"))
            .args(["iscsi", "--listen", "127.0.0.1:0", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dkraid-sim iscsi");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let status = child.wait();
                panic!("dkraid-sim exited before listening: {status:?}");
            }
            if let Some(a) = line.trim().strip_prefix("dkraid-sim: iSCSI target listening on ") {
                let addr = a.to_string();
                std::thread::spawn(move || for _ in err.lines() {});
                return Sim { child, addr };
            }
        }
    }

    /// SIGINT, then the JSON report.
    fn stop(self) -> serde_json::Value {
        // SAFETY: signals a child process this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "dkraid-sim iscsi exited {:?}", out.status);
        common::json_of(&out)
    }
}

struct Initiator {
    s: TcpStream,
    cmd_sn: u32,
    itt: u32,
}

impl Initiator {
    fn connect(addr: &str) -> Initiator {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        Initiator { s, cmd_sn: 1, itt: 1 }
    }

    fn send(&mut self, p: &Pdu) {
        self.s.write_all(&p.encode()).unwrap();
    }

    fn recv(&mut self) -> Pdu {
        Pdu::read_from(&mut self.s, 1 << 24).expect("a PDU from the target")
    }

    /// Login in one step (security → full feature); the response's status and keys.
    fn login(&mut self, keys: &[(&str, &str)]) -> ((u8, u8), Vec<(String, String)>) {
        let mut p = Pdu::new(op::LOGIN_REQUEST);
        p.set_immediate(true);
        p.bhs[1] = 0x80 | 3; // T, CSG 0, NSG 3
        p.bhs[8..14].copy_from_slice(&[0x80, 0x12, 0x34, 0x56, 0, 1]);
        p.set_itt(0);
        p.set_u32(24, self.cmd_sn);
        let mut pairs = vec![
            ("InitiatorName".to_string(), "iqn.2025-01.test:initiator".to_string()),
            ("AuthMethod".to_string(), "None".to_string()),
        ];
        pairs.extend(keys.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p.data = encode_text(&pairs);
        self.send(&p);
        let r = self.recv();
        assert_eq!(r.opcode(), op::LOGIN_RESPONSE);
        ((r.bhs[36], r.bhs[37]), parse_text(&r.data).unwrap())
    }

    /// One SCSI command; (status, sense, data-in, flags byte, residual).
    fn scsi(
        &mut self,
        cdb: &[u8],
        edtl: u32,
        out: Option<&[u8]>,
    ) -> (u8, Vec<u8>, Vec<u8>, u8, u32) {
        let mut p = Pdu::new(op::SCSI_COMMAND);
        self.itt += 1;
        let itt = self.itt;
        p.bhs[1] = 0x80
            | if out.is_some() {
                0x20
            } else if edtl > 0 {
                0x40
            } else {
                0
            };
        p.set_itt(itt);
        p.set_u32(20, edtl);
        p.set_u32(24, self.cmd_sn);
        self.cmd_sn += 1;
        p.bhs[32..32 + cdb.len()].copy_from_slice(cdb);
        self.send(&p);
        let mut data = Vec::new();
        loop {
            let r = self.recv();
            match r.opcode() {
                op::R2T => {
                    let (ttt, off, len) = (r.u32_at(20), r.u32_at(40), r.u32_at(44));
                    let payload = out.unwrap();
                    let mut d = Pdu::new(op::DATA_OUT);
                    d.bhs[1] = 0x80;
                    d.set_itt(itt);
                    d.set_u32(20, ttt);
                    d.set_u32(36, 0);
                    d.set_u32(40, off);
                    d.data = payload[off as usize..(off + len) as usize].to_vec();
                    self.send(&d);
                }
                op::DATA_IN => data.extend_from_slice(&r.data),
                op::SCSI_RESPONSE => {
                    assert_eq!(r.itt(), itt);
                    let sense = if r.data.len() > 2 { r.data[2..].to_vec() } else { Vec::new() };
                    return (r.bhs[3], sense, data, r.flags(), r.u32_at(44));
                }
                other => panic!("unexpected {} during a command", op::name(other)),
            }
        }
    }

    fn logout(&mut self) {
        let mut p = Pdu::new(op::LOGOUT_REQUEST);
        p.set_immediate(true);
        p.bhs[1] = 0x80;
        self.itt += 1;
        p.set_itt(self.itt);
        p.set_u32(24, self.cmd_sn);
        self.send(&p);
        let r = self.recv();
        assert_eq!(r.opcode(), op::LOGOUT_RESPONSE);
        assert_eq!(r.bhs[2], 0, "logout succeeded");
    }
}

#[test]
fn an_initiator_logs_in_writes_reads_back_and_logs_out() {
    let sim = Sim::start(&["--stage", "full"]);

    // Discovery: SendTargets lists the RAID 5 volume.
    let mut d = Initiator::connect(&sim.addr);
    let (status, _) = d.login(&[("SessionType", "Discovery")]);
    assert_eq!(status, (0, 0));
    let mut t = Pdu::new(op::TEXT_REQUEST);
    t.bhs[1] = 0x80;
    t.set_itt(9);
    t.set_u32(20, 0xFFFF_FFFF);
    t.set_u32(24, d.cmd_sn);
    t.data = encode_text(&[("SendTargets".into(), "All".into())]);
    d.send(&t);
    let r = d.recv();
    assert_eq!(r.opcode(), op::TEXT_RESPONSE);
    let keys = parse_text(&r.data).unwrap();
    assert!(keys.contains(&("TargetName".into(), TARGET.into())), "{keys:?}");
    d.logout();

    // A target that does not exist: login status Not found (0x0203).
    let mut bad = Initiator::connect(&sim.addr);
    assert_eq!(bad.login(&[("TargetName", "iqn.nope:t9")]).0, (2, 3));

    let mut i = Initiator::connect(&sim.addr);
    let (status, keys) = i.login(&[
        ("TargetName", TARGET),
        ("HeaderDigest", "None"),
        ("MaxRecvDataSegmentLength", "8192"),
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
    ]);
    assert_eq!(status, (0, 0));
    assert!(keys.contains(&("HeaderDigest".into(), "None".into())));

    // The first command sees the device's power-on unit attention; then INQUIRY.
    let _ = i.scsi(&[0x00, 0, 0, 0, 0, 0], 0, None);
    let (st, _, inq, _, _) = i.scsi(&[0x12, 0, 0, 0, 96, 0], 96, None);
    assert_eq!(st, 0);
    assert_eq!(&inq[8..14], b"DKRAID");

    // WRITE(10) of 16 blocks at LBA 64, its data solicited by R2T; READ(10) back.
    let pattern: Vec<u8> = (0..16 * 512).map(|n| (n * 7 % 251) as u8).collect();
    let (st, sense, _, _, _) =
        i.scsi(&[0x2A, 0, 0, 0, 0, 64, 0, 0, 16, 0], pattern.len() as u32, Some(&pattern));
    assert_eq!(st, 0, "WRITE(10): sense {sense:02x?}");
    let (st, _, back, flags, _) = i.scsi(&[0x28, 0, 0, 0, 0, 64, 0, 0, 16, 0], 16 * 512, None);
    assert_eq!(st, 0);
    assert_eq!(flags & 0x06, 0, "no residual");
    assert!(back == pattern, "the blocks read back as written");

    // Residuals (SAM-5): GOOD with the overflow or underflow counted, not CHECK CONDITION.
    let (st, _, data, flags, residual) = i.scsi(&[0x28, 0, 0, 0, 0, 64, 0, 0, 1, 0], 200, None);
    assert_eq!((st, data.len(), flags & 0x04, residual), (0, 200, 0x04, 312), "overflow");
    let (st, _, data, flags, residual) = i.scsi(&[0x28, 0, 0, 0, 0, 64, 0, 0, 1, 0], 10000, None);
    assert_eq!((st, data.len(), flags & 0x02, residual), (0, 512, 0x02, 10000 - 512));

    // Out of range: CHECK CONDITION with ILLEGAL REQUEST / LBA OUT OF RANGE in the sense.
    let (st, sense, _, _, _) = i.scsi(&[0x28, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 1, 0], 512, None);
    assert_eq!((st, sense[2] & 0x0F, sense[12]), (2, 5, 0x21));

    // A malformed PDU (an opcode no initiator sends): Reject, and the session goes on.
    let mut junk = Pdu::new(0x1C);
    junk.bhs[1] = 0x80;
    junk.set_u32(24, i.cmd_sn);
    i.send(&junk);
    let r = i.recv();
    assert_eq!(r.opcode(), op::REJECT);
    assert_eq!(r.bhs[2], 0x05, "Command not supported");
    assert_eq!(&r.data[..48], &junk.bhs[..]);
    let (st, _, _, _, _) = i.scsi(&[0x00, 0, 0, 0, 0, 0], 0, None);
    assert_eq!(st, 0, "TEST UNIT READY after the reject");
    i.logout();

    // A data segment over the declared MaxRecvDataSegmentLength: Reject, then the target
    // closes the connection.
    let mut big = Initiator::connect(&sim.addr);
    assert_eq!(big.login(&[("TargetName", TARGET)]).0, (0, 0));
    let mut header = Pdu::new(op::NOP_OUT);
    header.bhs[1] = 0x80;
    header.set_itt(5);
    let mut bytes = header.encode();
    bytes[5..8].copy_from_slice(&[0x10, 0, 0]); // 1 MiB announced
    big.s.write_all(&bytes).unwrap();
    let r = big.recv();
    assert_eq!((r.opcode(), r.bhs[2]), (op::REJECT, 0x04));
    assert!(Pdu::read_from(&mut big.s, 1 << 24).is_err(), "the connection is closed");

    // A connection dropped mid-command loses nothing on the target's side.
    let mut drop_me = Initiator::connect(&sim.addr);
    assert_eq!(drop_me.login(&[("TargetName", TARGET)]).0, (0, 0));
    drop(drop_me);

    let report = sim.stop();
    assert_eq!(report["violations"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["logins"].as_u64().unwrap() >= 4, "{report}");
    assert!(report["rejects"].as_u64().unwrap() >= 2);
    let errors: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(errors.iter().any(|e| e.starts_with("TargetNotFound")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("DataSegmentTooLong")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("UnexpectedOpcode")), "{errors:?}");
}
