//! How raidctl reaches the driver's user client: the same calls on both transports — the
//! test-bed's Unix socket ([`SocketTransport`], [`crate::sockwire`]) and IOKit on macOS
//! (`crate::iokit`).

use std::time::Duration;

use crate::error::Result;

/// `DkRaidUserClient`'s `ExternalMethod` selectors.
pub mod selector {
    /// Async; structure input: one admin request; scalar output: a ticket. The completion's
    /// args are `[ticket, response_bytes]`.
    pub const SUBMIT: u32 = 0;
    /// Scalar input: the ticket; structure output: the admin response. Frees the ticket.
    pub const FETCH: u32 = 1;
    /// Async; scalar output: the newest event sequence. A completion `[newest_sequence]`
    /// follows whenever the firmware announces new events.
    pub const WATCH_EVENTS: u32 = 2;
}

/// The largest structure output a call asks for (one admin response).
pub const MAX_STRUCT_OUT: usize = 4096;

/// What an `ExternalMethod` call returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReply {
    pub kern_return: i32,
    pub scalars_out: Vec<u64>,
    pub struct_out: Vec<u8>,
}

/// An async completion: its status and its args.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsyncMessage {
    pub status: i32,
    pub args: Vec<u64>,
}

/// A connection to the driver's user client.
pub trait Transport {
    /// Opens the user client (`IOServiceOpen`, or OPEN on the socket).
    fn open(&mut self) -> Result<()>;

    /// One `ExternalMethod` call: `struct_out_capacity` bytes of structure output and
    /// `scalars_out_capacity` scalar outputs are offered (IOKit's `*outputStructCnt` and
    /// `*outputCnt`, which the user client's dispatch table checks). A call the driver refused comes back as `Ok` with its
    /// `kern_return`; `Err` is a transport failure (no reply at all).
    fn call(
        &mut self,
        selector: u32,
        scalars_in: &[u64],
        struct_in: &[u8],
        struct_out_capacity: usize,
        scalars_out_capacity: usize,
        is_async: bool,
    ) -> Result<CallReply>;

    /// The next async completion, or `None` if none arrived within `timeout`.
    fn wait_async(&mut self, timeout: Duration) -> Result<Option<AsyncMessage>>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn call(
        &mut self,
        selector: u32,
        scalars_in: &[u64],
        struct_in: &[u8],
        struct_out_capacity: usize,
        scalars_out_capacity: usize,
        is_async: bool,
    ) -> Result<CallReply> {
        (**self).call(
            selector,
            scalars_in,
            struct_in,
            struct_out_capacity,
            scalars_out_capacity,
            is_async,
        )
    }
    fn wait_async(&mut self, timeout: Duration) -> Result<Option<AsyncMessage>> {
        (**self).wait_async(timeout)
    }
}

#[cfg(unix)]
pub use socket::SocketTransport;

#[cfg(unix)]
mod socket {
    use std::collections::VecDeque;
    use std::io;
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::{AsyncMessage, CallReply, Transport};
    use crate::error::{Error, ErrorKind, Result};
    use crate::sockwire::{self, Message, ReadError};

    /// How long a reply to OPEN, CALL, CLOSE or SIM_CONTROL may take.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

    /// The test-bed's user client over a Unix socket (`dkraid-sim serve --socket PATH`).
    /// A reader thread turns the stream into messages; replies are matched in order and the
    /// `ASYNC` messages that arrive between them are kept for [`Transport::wait_async`].
    #[derive(Debug)]
    pub struct SocketTransport {
        path: PathBuf,
        entitlements: Vec<String>,
        stream: Option<UnixStream>,
        incoming: Option<Receiver<std::result::Result<Message, ReadError>>>,
        asyncs: VecDeque<AsyncMessage>,
        reply_timeout: Duration,
        /// OPEN succeeded: CLOSE is owed.
        opened: bool,
    }

    impl SocketTransport {
        /// A transport that will connect to `path` and present `entitlements` in OPEN.
        pub fn new(path: impl Into<PathBuf>, entitlements: Vec<String>) -> SocketTransport {
            SocketTransport {
                path: path.into(),
                entitlements,
                stream: None,
                incoming: None,
                asyncs: VecDeque::new(),
                reply_timeout: REPLY_TIMEOUT,
                opened: false,
            }
        }

        /// The socket's path.
        pub fn path(&self) -> &Path {
            &self.path
        }

        fn connect(&mut self) -> Result<()> {
            let stream = UnixStream::connect(&self.path).map_err(|e| {
                let path = self.path.display();
                let why = match e.kind() {
                    io::ErrorKind::NotFound => "no such socket".to_string(),
                    io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    _ => e.to_string(),
                };
                Error::new(
                    ErrorKind::NoDriver,
                    format!(
                        "no test-bed server at {path} ({why}); start one with \
                         `dkraid-sim serve --socket {path}`"
                    ),
                )
            })?;
            let mut reader = stream.try_clone().map_err(|e| self.broken(&e.to_string()))?;
            let (tx, rx) = mpsc::channel();
            thread::Builder::new()
                .name("raidctl-socket-reader".into())
                .spawn(move || loop {
                    let msg = sockwire::read_message(&mut reader);
                    let done = msg.is_err();
                    if tx.send(msg).is_err() || done {
                        break;
                    }
                })
                .map_err(|e| self.broken(&e.to_string()))?;
            self.stream = Some(stream);
            self.incoming = Some(rx);
            Ok(())
        }

        fn broken(&self, why: &str) -> Error {
            Error::protocol(format!("the test-bed socket {} broke: {why}", self.path.display()))
        }

        fn send(&mut self, msg: &Message) -> Result<()> {
            let Some(stream) = self.stream.as_mut() else {
                return Err(Error::protocol("the test-bed connection is not open"));
            };
            sockwire::write_message(stream, msg).map_err(|e| {
                Error::protocol(format!("the test-bed socket {} broke: {e}", self.path.display()))
            })
        }

        /// The next message from the server within `timeout` (`None`: nothing came).
        fn next(&mut self, timeout: Duration) -> Result<Option<Message>> {
            let Some(rx) = self.incoming.as_ref() else {
                return Err(Error::protocol("the test-bed connection is not open"));
            };
            match rx.recv_timeout(timeout) {
                Ok(Ok(msg)) => Ok(Some(msg)),
                Ok(Err(ReadError::Closed)) | Err(RecvTimeoutError::Disconnected) => {
                    self.incoming = None;
                    Err(self.broken("the server closed the connection"))
                }
                Ok(Err(e)) => {
                    self.incoming = None;
                    Err(self.broken(&e.to_string()))
                }
                Err(RecvTimeoutError::Timeout) => Ok(None),
            }
        }

        /// Sends `msg` and waits for its reply, keeping the `ASYNC`s that come first.
        fn request(&mut self, msg: &Message) -> Result<Message> {
            self.send(msg)?;
            let deadline = Instant::now() + self.reply_timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.next(left)? {
                    Some(Message::Async { status, args }) => {
                        self.asyncs.push_back(AsyncMessage { status, args })
                    }
                    Some(reply) => return Ok(reply),
                    None => {
                        return Err(Error::protocol(format!(
                            "the test-bed server did not answer {} within {} s",
                            msg.name(),
                            self.reply_timeout.as_secs()
                        )))
                    }
                }
            }
        }

        fn unexpected(&self, sent: &Message, got: &Message) -> Error {
            Error::protocol(format!(
                "the test-bed server answered {} with a {} message",
                sent.name(),
                got.name()
            ))
        }

        /// A test-bed control command (`fail-drive 3`, `status`, …): `(status, text)`.
        pub fn sim_control(&mut self, command: &str) -> Result<(i32, String)> {
            if self.stream.is_none() {
                self.connect()?;
            }
            let msg = Message::SimControl { command: command.to_string() };
            match self.request(&msg)? {
                Message::SimControlReply { status, text } => Ok((status, text)),
                other => Err(self.unexpected(&msg, &other)),
            }
        }

        /// Closes the user client (CLOSE) and the socket.
        pub fn close(&mut self) -> Result<()> {
            if self.stream.is_none() {
                return Ok(());
            }
            let result = if !self.opened {
                Ok(())
            } else {
                match self.request(&Message::Close) {
                    Ok(Message::CloseReply { kern_return: 0 }) => Ok(()),
                    Ok(Message::CloseReply { kern_return }) => {
                        Err(Error::from_kern_return(kern_return, "CLOSE"))
                    }
                    Ok(other) => Err(self.unexpected(&Message::Close, &other)),
                    Err(e) => Err(e),
                }
            };
            self.opened = false;
            if let Some(stream) = self.stream.take() {
                // The reader thread sees end-of-file and exits; an error here changes nothing.
                let _ = stream.shutdown(Shutdown::Both);
            }
            self.incoming = None;
            result
        }
    }

    impl Drop for SocketTransport {
        fn drop(&mut self) {
            self.reply_timeout = Duration::from_secs(2);
            // Nothing is left to report to: a failed close at exit only loses the goodbye.
            let _ = self.close();
        }
    }

    impl Transport for SocketTransport {
        fn open(&mut self) -> Result<()> {
            if self.stream.is_none() {
                self.connect()?;
            }
            let msg =
                Message::Open { user_client_type: 0, entitlements: self.entitlements.clone() };
            match self.request(&msg)? {
                Message::OpenReply { kern_return: 0 } => {
                    self.opened = true;
                    Ok(())
                }
                Message::OpenReply { kern_return } => {
                    Err(Error::from_kern_return(kern_return, "opening the user client"))
                }
                other => Err(self.unexpected(&msg, &other)),
            }
        }

        fn call(
            &mut self,
            selector: u32,
            scalars_in: &[u64],
            struct_in: &[u8],
            struct_out_capacity: usize,
            scalars_out_capacity: usize,
            is_async: bool,
        ) -> Result<CallReply> {
            let capacity = u32::try_from(struct_out_capacity)
                .map_err(|_| Error::protocol("structure output capacity past 4 GiB"))?;
            let scalar_capacity = u16::try_from(scalars_out_capacity)
                .map_err(|_| Error::protocol("scalar output capacity past 65535"))?;
            let msg = Message::call(
                selector,
                is_async,
                scalars_in.to_vec(),
                struct_in.to_vec(),
                capacity,
                scalar_capacity,
            );
            match self.request(&msg)? {
                Message::CallReply { kern_return, scalars, struct_out } => {
                    Ok(CallReply { kern_return, scalars_out: scalars, struct_out })
                }
                other => Err(self.unexpected(&msg, &other)),
            }
        }

        fn wait_async(&mut self, timeout: Duration) -> Result<Option<AsyncMessage>> {
            if let Some(m) = self.asyncs.pop_front() {
                return Ok(Some(m));
            }
            match self.next(timeout)? {
                Some(Message::Async { status, args }) => Ok(Some(AsyncMessage { status, args })),
                Some(other) => Err(Error::protocol(format!(
                    "the test-bed server sent a {} message nobody asked for",
                    other.name()
                ))),
                None => Ok(None),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::os::unix::net::UnixListener;

        /// A one-connection server thread that answers with `script(msg)`.
        fn serve(
            dir: &Path,
            script: impl Fn(&Message) -> Vec<Message> + Send + 'static,
        ) -> PathBuf {
            let path = dir.join("sock");
            let listener = UnixListener::bind(&path).unwrap();
            thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                while let Ok(msg) = sockwire::read_message(&mut s) {
                    for reply in script(&msg) {
                        if sockwire::write_message(&mut s, &reply).is_err() {
                            return;
                        }
                    }
                }
            });
            path
        }

        fn temp_dir(name: &str) -> PathBuf {
            let dir =
                std::env::temp_dir().join(format!("raidctl-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        #[test]
        fn open_call_async_and_close_over_a_socket() {
            let dir = temp_dir("socket");
            let path = serve(&dir, |msg| match msg {
                Message::Open { entitlements, .. } => {
                    let kr = if entitlements.is_empty() { -1 } else { 0 };
                    vec![Message::OpenReply { kern_return: kr }]
                }
                Message::Call { selector: 0, .. } => vec![
                    Message::Async { status: 0, args: vec![9] },
                    Message::CallReply { kern_return: 0, scalars: vec![7], struct_out: vec![] },
                    Message::Async { status: 0, args: vec![7, 36] },
                ],
                Message::SimControl { command } => {
                    vec![Message::SimControlReply { status: 0, text: format!("did {command}") }]
                }
                Message::Close => vec![Message::CloseReply { kern_return: 0 }],
                _ => {
                    vec![Message::CallReply { kern_return: 1, scalars: vec![], struct_out: vec![] }]
                }
            });
            let mut t = SocketTransport::new(&path, vec!["org.dkraid.admin.configure".into()]);
            t.open().unwrap();
            let reply = t.call(0, &[], &[1, 2, 3], 0, 1, true).unwrap();
            assert_eq!(reply.scalars_out, vec![7]);
            let first = t.wait_async(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(first.args, vec![9]);
            let second = t.wait_async(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(second.args, vec![7, 36]);
            assert_eq!(t.wait_async(Duration::from_millis(20)).unwrap(), None);
            assert_eq!(t.sim_control("status").unwrap(), (0, "did status".to_string()));
            t.close().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn a_missing_socket_is_no_driver_and_names_the_path() {
            let dir = temp_dir("missing");
            let path = dir.join("nobody-here");
            let mut t = SocketTransport::new(&path, vec![]);
            let e = t.open().unwrap_err();
            assert_eq!(e.kind, ErrorKind::NoDriver);
            assert_eq!(e.exit_code(), 3);
            assert!(e.message.contains(&path.display().to_string()), "{e}");
            assert!(e.message.contains("dkraid-sim serve --socket"), "{e}");
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn a_refused_open_and_a_broken_socket_are_named() {
            let dir = temp_dir("refused");
            let path = serve(&dir, |msg| match msg {
                Message::Open { .. } => {
                    vec![Message::OpenReply { kern_return: 0xe00002e2_u32 as i32 }]
                }
                _ => vec![],
            });
            let mut t = SocketTransport::new(&path, vec![]);
            assert_eq!(t.open().unwrap_err().kind, ErrorKind::Permission);
            let _ = std::fs::remove_dir_all(&dir);

            let dir = temp_dir("broken");
            let path = dir.join("sock");
            let listener = UnixListener::bind(&path).unwrap();
            thread::spawn(move || {
                let (s, _) = listener.accept().unwrap();
                drop(s);
            });
            let mut t = SocketTransport::new(&path, vec![]);
            let e = t.open().unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
