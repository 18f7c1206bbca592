//! The login phase (RFC 7143 §6, §13): security negotiation with AuthMethod=None, then the
//! operational keys, then the full feature phase. Every key's outcome follows its result
//! function (§13): declaratives are taken as given, numbers by min or max, booleans by OR or
//! AND; an unknown key is answered `NotUnderstood`, a bad value `Reject`.

use super::pdu::{encode_text, op, parse_text, Pdu};

/// The largest data segment this target accepts (its declared MaxRecvDataSegmentLength).
pub const TARGET_MAX_RECV_DATA_SEGMENT: u32 = 262_144;
/// This target's MaxBurstLength and FirstBurstLength offers.
pub const TARGET_MAX_BURST: u32 = 1 << 20;
pub const TARGET_FIRST_BURST: u32 = 65_536;
/// The command window (MaxCmdSN - ExpCmdSN + 1).
pub const COMMAND_WINDOW: u32 = 32;

/// Login stages (CSG/NSG).
pub const STAGE_SECURITY: u8 = 0;
pub const STAGE_OPERATIONAL: u8 = 1;
pub const STAGE_FULL_FEATURE: u8 = 3;

/// Login status class and detail (RFC 7143 §11.13.5).
pub mod status {
    pub const SUCCESS: (u8, u8) = (0, 0);
    pub const INITIATOR_ERROR: (u8, u8) = (2, 0x00);
    pub const AUTH_FAILURE: (u8, u8) = (2, 0x01);
    pub const NOT_FOUND: (u8, u8) = (2, 0x03);
    pub const UNSUPPORTED_VERSION: (u8, u8) = (2, 0x05);
    pub const MISSING_PARAMETER: (u8, u8) = (2, 0x07);
    pub const SESSION_DOES_NOT_EXIST: (u8, u8) = (2, 0x0A);
    pub const INVALID_DURING_LOGIN: (u8, u8) = (2, 0x0B);
    pub const OUT_OF_RESOURCES: (u8, u8) = (3, 0x02);
}

/// Normal (SCSI I/O) or Discovery (SendTargets only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Normal,
    Discovery,
}

/// What was negotiated for the full feature phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The initiator's MaxRecvDataSegmentLength: the largest Data-In/Text segment to send it.
    pub initiator_max_recv: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
}

impl Default for Params {
    /// RFC 7143's defaults.
    fn default() -> Self {
        Params {
            initiator_max_recv: 8192,
            max_burst: 262_144,
            first_burst: 65_536,
            initial_r2t: true,
            immediate_data: true,
        }
    }
}

/// The outcome of a login request.
#[derive(Debug)]
pub enum Step {
    /// Send the response and wait for the next request.
    Continue(Pdu),
    /// Send the response: the connection is in the full feature phase.
    Complete(Pdu),
    /// Send the response (a failure status) and close the connection; the reason, named.
    Fail(Pdu, String),
}

/// One connection's login.
#[derive(Debug)]
pub struct Login {
    stage: u8,
    pub initiator_name: Option<String>,
    pub session_type: SessionType,
    pub target_name: Option<String>,
    pub params: Params,
    /// Keys carried over C (continue) PDUs.
    partial: Vec<u8>,
    declared_max_recv: bool,
    sent_tpgt: bool,
    first: bool,
    /// The StatSN of the next response.
    pub stat_sn: u32,
    /// The initiator's CmdSN (login requests are immediate: it does not advance).
    pub cmd_sn: u32,
    pub tsih: u16,
    pub isid: [u8; 6],
}

impl Default for Login {
    fn default() -> Self {
        Login {
            stage: STAGE_SECURITY,
            initiator_name: None,
            session_type: SessionType::Normal,
            target_name: None,
            params: Params::default(),
            partial: Vec::new(),
            declared_max_recv: false,
            sent_tpgt: false,
            first: true,
            stat_sn: 0,
            cmd_sn: 0,
            tsih: 0,
            isid: [0; 6],
        }
    }
}

fn yes(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

fn number(v: &str, lo: u32, hi: u32) -> Option<u32> {
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()?
    } else {
        v.parse().ok()?
    };
    (lo..=hi).contains(&n).then_some(n)
}

impl Login {
    /// A login response to `req` with the current state.
    fn response(&mut self, req: &Pdu, transit: bool, next: u8, st: (u8, u8)) -> Pdu {
        let mut r = Pdu::new(op::LOGIN_RESPONSE);
        let csg = (req.flags() >> 2) & 3;
        r.bhs[1] = if transit { 0x80 | (csg << 2) | next } else { csg << 2 };
        r.bhs[2] = 0; // version-max
        r.bhs[3] = 0; // version-active
        r.bhs[8..14].copy_from_slice(&req.bhs[8..14]);
        r.set_u16(14, self.tsih);
        r.set_itt(req.itt());
        r.set_u32(24, self.stat_sn);
        self.stat_sn = self.stat_sn.wrapping_add(1);
        r.set_u32(28, self.cmd_sn);
        r.set_u32(32, self.cmd_sn.wrapping_add(COMMAND_WINDOW - 1));
        r.bhs[36] = st.0;
        r.bhs[37] = st.1;
        r
    }

    fn fail(&mut self, req: &Pdu, st: (u8, u8), why: String) -> Step {
        let r = self.response(req, false, 0, st);
        Step::Fail(r, why)
    }

    /// Handle one Login Request. `target_exists` says whether a TargetName names an exported
    /// target; `next_tsih` gives the session its identifying handle when it completes.
    pub fn step(
        &mut self,
        req: &Pdu,
        target_exists: &dyn Fn(&str) -> bool,
        next_tsih: &mut dyn FnMut() -> u16,
    ) -> Step {
        if req.opcode() != op::LOGIN_REQUEST {
            return self.fail(
                req,
                status::INVALID_DURING_LOGIN,
                format!(
                    "InvalidDuringLogin: a {} PDU arrived before the login completed",
                    op::name(req.opcode())
                ),
            );
        }
        if self.first {
            self.first = false;
            self.stat_sn = req.u32_at(28);
            self.isid.copy_from_slice(&req.bhs[8..14]);
            let (max, min) = (req.bhs[2], req.bhs[3]);
            if min > 0 {
                return self.fail(
                    req,
                    status::UNSUPPORTED_VERSION,
                    format!(
                        "UnsupportedVersion: the initiator needs version {min}..={max}; this target \
                         speaks version 0 (RFC 7143)"
                    ),
                );
            }
            if req.u16_at(14) != 0 {
                return self.fail(
                    req,
                    status::SESSION_DOES_NOT_EXIST,
                    format!(
                        "SessionDoesNotExist: TSIH {} names no session (MaxConnections=1: a \
                         connection cannot join one)",
                        req.u16_at(14)
                    ),
                );
            }
        }
        self.cmd_sn = req.u32_at(24);
        let transit = req.flags() & 0x80 != 0;
        let cont = req.flags() & 0x40 != 0;
        let csg = (req.flags() >> 2) & 3;
        let nsg = req.flags() & 3;
        if transit && cont {
            return self.fail(
                req,
                status::INITIATOR_ERROR,
                "LoginTransitWithContinue: T and C are both set".into(),
            );
        }
        if csg == 2 || csg < self.stage || (transit && (nsg == 2 || nsg <= csg)) {
            return self.fail(
                req,
                status::INITIATOR_ERROR,
                format!(
                    "BadLoginStage: CSG {csg} NSG {nsg} (T={}) after stage {}",
                    u8::from(transit),
                    self.stage
                ),
            );
        }
        self.stage = csg;
        self.partial.extend_from_slice(&req.data);
        if cont {
            // More keys follow: acknowledge with an empty response.
            let r = self.response(req, false, 0, status::SUCCESS);
            return Step::Continue(r);
        }
        let text = std::mem::take(&mut self.partial);
        let keys = match parse_text(&text) {
            Ok(k) => k,
            Err(e) => return self.fail(req, status::INITIATOR_ERROR, e),
        };
        let mut answers: Vec<(String, String)> = Vec::new();
        let mut security_done = false;
        for (k, v) in &keys {
            let answer = match k.as_str() {
                "InitiatorName" => {
                    self.initiator_name = Some(v.clone());
                    None
                }
                "InitiatorAlias" => None,
                "SessionType" => match v.as_str() {
                    "Normal" => {
                        self.session_type = SessionType::Normal;
                        None
                    }
                    "Discovery" => {
                        self.session_type = SessionType::Discovery;
                        None
                    }
                    _ => Some("Reject".to_string()),
                },
                "TargetName" => {
                    self.target_name = Some(v.clone());
                    None
                }
                "AuthMethod" => {
                    if v.split(',').any(|m| m == "None") {
                        security_done = true;
                        Some("None".to_string())
                    } else {
                        return self.fail(
                            req,
                            status::AUTH_FAILURE,
                            format!(
                                "AuthenticationFailed: AuthMethod={v}; this target offers only \
                                 None"
                            ),
                        );
                    }
                }
                "HeaderDigest" | "DataDigest" => Some(
                    if v.split(',').any(|m| m == "None") { "None" } else { "Reject" }.to_string(),
                ),
                "MaxRecvDataSegmentLength" => match number(v, 512, (1 << 24) - 1) {
                    Some(n) => {
                        self.params.initiator_max_recv = n;
                        self.declared_max_recv = true;
                        Some(TARGET_MAX_RECV_DATA_SEGMENT.to_string())
                    }
                    None => Some("Reject".into()),
                },
                "MaxBurstLength" => match number(v, 512, (1 << 24) - 1) {
                    Some(n) => {
                        self.params.max_burst = n.min(TARGET_MAX_BURST);
                        Some(self.params.max_burst.to_string())
                    }
                    None => Some("Reject".into()),
                },
                "FirstBurstLength" => match number(v, 512, (1 << 24) - 1) {
                    Some(n) => {
                        self.params.first_burst = n.min(TARGET_FIRST_BURST);
                        Some(self.params.first_burst.to_string())
                    }
                    None => Some("Reject".into()),
                },
                "InitialR2T" => match yes(v) {
                    // OR with this target's No: the initiator's value.
                    Some(b) => {
                        self.params.initial_r2t = b;
                        Some(yes_no(b))
                    }
                    None => Some("Reject".into()),
                },
                "ImmediateData" => match yes(v) {
                    // AND with this target's Yes: the initiator's value.
                    Some(b) => {
                        self.params.immediate_data = b;
                        Some(yes_no(b))
                    }
                    None => Some("Reject".into()),
                },
                "DataPDUInOrder" | "DataSequenceInOrder" => match yes(v) {
                    // OR with this target's Yes.
                    Some(_) => Some("Yes".into()),
                    None => Some("Reject".into()),
                },
                "IFMarker" | "OFMarker" => match yes(v) {
                    // AND with this target's No.
                    Some(_) => Some("No".into()),
                    None => Some("Reject".into()),
                },
                "MaxConnections" | "MaxOutstandingR2T" => match number(v, 1, 65535) {
                    Some(_) => Some("1".into()),
                    None => Some("Reject".into()),
                },
                "ErrorRecoveryLevel" => match number(v, 0, 2) {
                    Some(_) => Some("0".into()),
                    None => Some("Reject".into()),
                },
                "DefaultTime2Wait" => match number(v, 0, 3600) {
                    Some(n) => Some(n.max(2).to_string()),
                    None => Some("Reject".into()),
                },
                "DefaultTime2Retain" => match number(v, 0, 3600) {
                    Some(_) => Some("0".into()),
                    None => Some("Reject".into()),
                },
                _ => Some("NotUnderstood".to_string()),
            };
            if let Some(a) = answer {
                answers.push((k.clone(), a));
            }
        }
        if self.initiator_name.is_none() {
            return self.fail(
                req,
                status::MISSING_PARAMETER,
                "MissingInitiatorName: the first login request must carry InitiatorName".into(),
            );
        }
        if self.session_type == SessionType::Normal {
            match &self.target_name {
                None => {
                    return self.fail(
                        req,
                        status::MISSING_PARAMETER,
                        "MissingTargetName: a normal session must name its target".into(),
                    )
                }
                Some(t) if !target_exists(t) => {
                    let t = t.clone();
                    return self.fail(
                        req,
                        status::NOT_FOUND,
                        format!("TargetNotFound: no target named {t:?} is exported"),
                    );
                }
                Some(_) => {}
            }
            if !self.sent_tpgt {
                self.sent_tpgt = true;
                answers.push(("TargetPortalGroupTag".into(), "1".into()));
            }
        }
        let _ = security_done;
        let mut next = nsg;
        let mut transit_ok = transit;
        if transit && next == STAGE_FULL_FEATURE && !self.declared_max_recv {
            // Declare this target's limit before the full feature phase.
            self.declared_max_recv = true;
            answers.push((
                "MaxRecvDataSegmentLength".into(),
                TARGET_MAX_RECV_DATA_SEGMENT.to_string(),
            ));
        }
        if self.params.first_burst > self.params.max_burst {
            self.params.first_burst = self.params.max_burst;
        }
        if !transit {
            next = 0;
            transit_ok = false;
        }
        if transit_ok && next == STAGE_FULL_FEATURE {
            self.tsih = next_tsih();
        }
        let mut r = self.response(req, transit_ok, next, status::SUCCESS);
        r.data = encode_text(&answers);
        if transit_ok {
            self.stage = next;
        }
        if self.stage == STAGE_FULL_FEATURE {
            Step::Complete(r)
        } else {
            Step::Continue(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(csg: u8, nsg: u8, transit: bool, keys: &[(&str, &str)]) -> Pdu {
        let mut p = Pdu::new(op::LOGIN_REQUEST);
        p.set_immediate(true);
        p.bhs[1] = (csg << 2) | nsg | if transit { 0x80 } else { 0 };
        p.bhs[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 1]);
        p.set_itt(7);
        p.set_u32(24, 100);
        p.set_u32(28, 5);
        let pairs: Vec<(String, String)> =
            keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.data = encode_text(&pairs);
        p
    }

    fn keys_of(p: &Pdu) -> Vec<(String, String)> {
        parse_text(&p.data).unwrap()
    }

    #[test]
    fn a_normal_login_in_two_stages() {
        let mut l = Login::default();
        let exists = |t: &str| t == "iqn.x:t0";
        let mut tsih = || 9;
        let s = l.step(
            &request(
                0,
                1,
                true,
                &[
                    ("InitiatorName", "iqn.i"),
                    ("TargetName", "iqn.x:t0"),
                    ("SessionType", "Normal"),
                    ("AuthMethod", "CHAP,None"),
                ],
            ),
            &exists,
            &mut tsih,
        );
        let Step::Continue(r) = s else { panic!("{s:?}") };
        assert_eq!(r.opcode(), op::LOGIN_RESPONSE);
        assert_eq!(r.flags(), 0x80 | 1, "T, CSG 0, NSG 1");
        assert_eq!(r.u32_at(24), 5, "StatSN starts at the initiator's ExpStatSN");
        assert_eq!(r.u32_at(28), 100);
        let k = keys_of(&r);
        assert!(k.contains(&("AuthMethod".into(), "None".into())));
        assert!(k.contains(&("TargetPortalGroupTag".into(), "1".into())));
        let s = l.step(
            &request(
                1,
                3,
                true,
                &[
                    ("HeaderDigest", "CRC32C,None"),
                    ("MaxRecvDataSegmentLength", "4096"),
                    ("MaxBurstLength", "16776192"),
                    ("FirstBurstLength", "262144"),
                    ("InitialR2T", "No"),
                    ("ImmediateData", "Yes"),
                    ("X-com.example.thing", "1"),
                ],
            ),
            &exists,
            &mut tsih,
        );
        let Step::Complete(r) = s else { panic!("{s:?}") };
        assert_eq!(r.flags(), 0x80 | (1 << 2) | 3);
        assert_eq!(r.u16_at(14), 9, "TSIH");
        let k = keys_of(&r);
        assert!(k.contains(&("HeaderDigest".into(), "None".into())));
        assert!(k.contains(&("MaxBurstLength".into(), TARGET_MAX_BURST.to_string())));
        assert!(k.contains(&("FirstBurstLength".into(), "65536".into())));
        assert!(k.contains(&("X-com.example.thing".into(), "NotUnderstood".into())));
        assert_eq!(l.params.initiator_max_recv, 4096);
        assert!(!l.params.initial_r2t && l.params.immediate_data);
    }

    #[test]
    fn failures_are_named() {
        let exists = |_: &str| false;
        let mut tsih = || 1;
        let mut l = Login::default();
        let s = l.step(
            &request(0, 3, true, &[("InitiatorName", "i"), ("TargetName", "nope")]),
            &exists,
            &mut tsih,
        );
        let Step::Fail(r, why) = s else { panic!("{s:?}") };
        assert_eq!((r.bhs[36], r.bhs[37]), status::NOT_FOUND);
        assert!(why.starts_with("TargetNotFound"), "{why}");

        let mut l = Login::default();
        let s = l.step(&request(0, 3, true, &[("AuthMethod", "CHAP")]), &exists, &mut tsih);
        assert!(matches!(s, Step::Fail(_, ref w) if w.starts_with("AuthenticationFailed")));

        let mut l = Login::default();
        let s = l.step(&request(0, 3, true, &[("SessionType", "Discovery")]), &exists, &mut tsih);
        assert!(matches!(s, Step::Fail(_, ref w) if w.starts_with("MissingInitiatorName")));

        let mut l = Login::default();
        let s = l.step(&request(1, 0, true, &[("InitiatorName", "i")]), &exists, &mut tsih);
        assert!(matches!(s, Step::Fail(_, ref w) if w.starts_with("BadLoginStage")));

        let mut l = Login::default();
        let s = l.step(&Pdu::new(op::SCSI_COMMAND), &exists, &mut tsih);
        assert!(matches!(s, Step::Fail(_, ref w) if w.starts_with("InvalidDuringLogin")));
    }

    #[test]
    fn a_discovery_session_needs_no_target() {
        let mut l = Login::default();
        let s = l.step(
            &request(0, 3, true, &[("InitiatorName", "i"), ("SessionType", "Discovery")]),
            &|_| false,
            &mut || 3,
        );
        let Step::Complete(r) = s else { panic!("{s:?}") };
        assert_eq!(l.session_type, SessionType::Discovery);
        assert!(keys_of(&r).iter().any(|(k, _)| k == "MaxRecvDataSegmentLength"));
    }
}
